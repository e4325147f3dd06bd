package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jewelry-shop/lab/internal/realnode/nodespec"
)

// runNode is the node's init: it prepares the namespaces, then runs the
// daemons until SIGTERM or until one of them ends.
func runNode(log *slog.Logger, specPath string) error {
	if os.Getpid() != 1 {
		return fmt.Errorf("labnode node must be the first process of a new PID namespace, it is %d", os.Getpid())
	}
	spec, err := nodespec.Read(specPath)
	if err != nil {
		return err
	}
	log = log.With("node", spec.Name)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	if err := prepareMounts(spec); err != nil {
		return err
	}
	if err := syscall.Sethostname([]byte(spec.Name)); err != nil {
		return fmt.Errorf("set the host name: %w", err)
	}
	// realnode writes one byte once eth0 is in this network namespace, and
	// closes the pipe without writing when it gives up.
	ready := os.NewFile(3, "ready")
	b := make([]byte, 1)
	if n, err := ready.Read(b); n != 1 {
		return fmt.Errorf("wait for the node's link: the test closed the pipe: %w", err)
	}
	_ = ready.Close()

	s := newSupervisor()
	defer s.stop()
	if err := configureNetwork(s, spec); err != nil {
		return err
	}
	log.Info("network configured", "address", spec.Address)

	ctrd, err := s.start(spec.Containerd.Name, filepath.Join(spec.LogDir, spec.Containerd.Name+".log"), spec.Containerd.Path, spec.Containerd.Args...)
	if err != nil {
		return err
	}
	stopAll := func(procs ...*proc) {
		terminate(10*time.Second, procs...)
		terminate(10*time.Second, ctrd)
	}
	if err := waitSocket(spec.Socket, ctrd, sigs, time.Minute); err != nil {
		stopAll()
		return err
	}
	log.Info("containerd answers", "socket", spec.Socket)
	for _, archive := range spec.Import {
		start := time.Now()
		out, err := s.run(spec.Ctr, "--address", spec.Socket, "--namespace", "k8s.io", "images", "import", archive)
		if err != nil {
			stopAll()
			return fmt.Errorf("import %s: %w", archive, err)
		}
		log.Info("imported", "archive", archive, "elapsed", time.Since(start).Round(time.Millisecond), "output", out)
	}
	var daemons []*proc
	for _, d := range []nodespec.Daemon{spec.Kubelet, spec.KubeProxy} {
		p, err := s.start(d.Name, filepath.Join(spec.LogDir, d.Name+".log"), d.Path, d.Args...)
		if err != nil {
			stopAll(daemons...)
			return err
		}
		daemons = append(daemons, p)
	}
	log.Info("kubelet and kube-proxy started")

	for {
		select {
		case sig := <-sigs:
			log.Info("stopping", "signal", sig.String())
			stopAll(daemons...)
			return nil
		case p := <-s.exited:
			if p != ctrd && !contains(daemons, p) {
				continue
			}
			err := p.failure()
			stopAll(daemons...)
			return err
		}
	}
}

func contains(procs []*proc, p *proc) bool {
	for _, q := range procs {
		if q == p {
			return true
		}
	}
	return false
}

// prepareMounts keeps every mount of the node to itself, gives it a /proc of
// its PID namespace, its tmpfs directories and the masked kernel settings.
func prepareMounts(spec nodespec.Spec) error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make the node's mounts private: %w", err)
	}
	if err := syscall.Mount("proc", "/proc", "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount the node's /proc: %w", err)
	}
	for _, t := range spec.Tmpfs {
		// A directory made here would stay on the host.
		fi, err := os.Stat(t.Path)
		if err != nil {
			return fmt.Errorf("tmpfs on %s: the directory must exist on the host: %w", t.Path, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("tmpfs on %s: not a directory", t.Path)
		}
		if err := syscall.Mount("tmpfs", t.Path, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=755,size="+t.Size); err != nil {
			return fmt.Errorf("mount a tmpfs on %s: %w", t.Path, err)
		}
	}
	if len(spec.Masked) == 0 {
		return nil
	}
	dir, err := os.MkdirTemp("/run", "labnode-masked-")
	if err != nil {
		return fmt.Errorf("mask kernel settings: %w (is /run one of the node's tmpfs?)", err)
	}
	for path, value := range spec.Masked {
		target := filepath.Join("/proc/sys", filepath.Clean("/"+path))
		file := filepath.Join(dir, strings.ReplaceAll(strings.Trim(path, "/"), "/", "."))
		if err := os.WriteFile(file, []byte(value+"\n"), 0o444); err != nil {
			return fmt.Errorf("mask %s: %w", target, err)
		}
		if err := syscall.Mount(file, target, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("mask %s: %w", target, err)
		}
		if err := syscall.Mount("", target, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("mask %s read-only: %w", target, err)
		}
	}
	return nil
}

// configureNetwork brings up lo and eth0 with the node's address and routes,
// and writes the network settings.
func configureNetwork(s *supervisor, spec nodespec.Spec) error {
	cmds := [][]string{
		{"link", "set", "lo", "up"},
		{"addr", "add", spec.Address, "dev", "eth0"},
		{"link", "set", "eth0", "up"},
	}
	for _, r := range spec.Routes {
		cmds = append(cmds, []string{"route", "add", r.To, "via", r.Via, "dev", "eth0"})
	}
	for _, c := range cmds {
		if _, err := s.run("/usr/sbin/ip", c...); err != nil {
			return fmt.Errorf("configure the node's network: %w", err)
		}
	}
	for path, value := range spec.Sysctls {
		p := filepath.Join("/proc/sys", filepath.Clean("/"+path))
		if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
			return fmt.Errorf("set %s: %w", p, err)
		}
	}
	return nil
}

// waitSocket waits until something accepts connections on the unix socket,
// failing when the daemon behind it ends first.
func waitSocket(path string, p *proc, sigs <-chan os.Signal, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", path)
		cancel()
		if err == nil {
			_ = c.Close()
			return nil
		}
		if p.ended() {
			return p.failure()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer on %s after %s: %w; end of its log:\n%s", p.name, path, timeout, err, tail(p.log, 3000))
		}
		select {
		case sig := <-sigs:
			return fmt.Errorf("stopped by %s while waiting for %s", sig, p.name)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
