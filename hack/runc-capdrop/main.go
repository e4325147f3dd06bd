// Command runc-capdrop is the OCI runtime of the test environment's Docker
// daemon: it removes CAP_SYS_RESOURCE from the capability sets of the
// container (or exec) it is asked to start, then executes runc with the same
// arguments.
//
// The sandboxes lab is developed and tested in lack CAP_SYS_RESOURCE, so
// runc cannot grant it and every privileged container (k3d starts every node
// privileged) fails with "unable to apply caps". Without that one capability
// a node container still runs its kubelet and containerd. It belongs to the
// tests only: hack/dockerd.sh registers it as dockerd's default runtime; a
// user's Docker never needs it.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// dropped is the capability this sandbox cannot grant.
const dropped = "CAP_SYS_RESOURCE"

func main() {
	runc, err := exec.LookPath("runc")
	if err == nil {
		err = edit(os.Args[1:])
	}
	if err == nil {
		err = syscall.Exec(runc, append([]string{"runc"}, os.Args[1:]...), os.Environ())
	}
	fmt.Fprintln(os.Stderr, "runc-capdrop:", err)
	os.Exit(1)
}

// edit rewrites the spec that the runc command line args starts from: the
// bundle's config.json for create and run, the process file for exec.
func edit(args []string) error {
	cmd, rest := subcommand(args)
	switch cmd {
	case "create", "run":
		bundle := flagValue(rest, "bundle", "b")
		if bundle == "" {
			bundle = "."
		}
		return rewrite(filepath.Join(bundle, "config.json"), func(spec map[string]any) {
			if p, ok := spec["process"].(map[string]any); ok {
				dropFrom(p)
			}
		})
	case "exec":
		if file := flagValue(rest, "process", "p"); file != "" {
			return rewrite(file, dropFrom)
		}
	}
	return nil
}

// subcommand returns runc's subcommand and the arguments after it, skipping
// the global flags before it.
func subcommand(args []string) (string, []string) {
	valued := map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case valued[a]:
			i++
		case strings.HasPrefix(a, "-"):
		default:
			return a, args[i+1:]
		}
	}
	return "", nil
}

// flagValue returns the value of --long or -short in args, in either the
// "--long value" or the "--long=value" form.
func flagValue(args []string, long, short string) string {
	for i, a := range args {
		for _, name := range []string{"--" + long, "-" + short} {
			if a == name && i+1 < len(args) {
				return args[i+1]
			}
			if v, ok := strings.CutPrefix(a, name+"="); ok {
				return v
			}
		}
	}
	return ""
}

// dropFrom removes the capability from every set of a process spec.
func dropFrom(process map[string]any) {
	caps, ok := process["capabilities"].(map[string]any)
	if !ok {
		return
	}
	for set, v := range caps {
		list, ok := v.([]any)
		if !ok {
			continue
		}
		caps[set] = slices.DeleteFunc(list, func(c any) bool { return c == dropped })
	}
}

// rewrite decodes a JSON file, changes it and writes it back. Numbers stay
// exactly as they were (json.Number), so limits and IDs are not rounded.
func rewrite(path string, change func(map[string]any)) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // nothing to edit: runc reports the missing file itself
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var spec map[string]any
	if err := dec.Decode(&spec); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	change(spec)
	out, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
