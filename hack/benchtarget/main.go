// Command benchtarget is the minimal HTTP target of `make bench-load`: it
// answers every request with a small body, optionally after a fixed service
// time, and optionally freezes for part of every second so that a load
// generator's latency figures can be checked against a known truth.
//
//	benchtarget -addr 127.0.0.1:8088 [-delay 5ms] [-freeze 200ms]
//
// On SIGTERM it prints its own latency (handler start to end):
// "target requests=N p50_ms=X p99_ms=Y".
//
// With -loop it is instead the benchmark's reference client, the plain
// net/http loop: -conns goroutines sending GET requests back to back for
// -duration, printing "requests N seconds S".
//
//	benchtarget -loop http://127.0.0.1:8088/ -conns 50 -duration 10s
//
// With -gen it is the lab's load generator (package load) in a bare Go
// program: -users closed-model users with -think-min..-think-max between
// requests for -duration, the run's result as JSON on stdout.
//
//	benchtarget -gen http://127.0.0.1:8088/ -users 1000 -think-min 500ms -think-max 1.5s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchtarget:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:8088", "listen address (loopback)")
	delay := flag.Duration("delay", 0, "service time of every request")
	freeze := flag.Duration("freeze", 0, "freeze for this long at the start of every second (requests wait)")
	loop := flag.String("loop", "", "be the plain net/http reference client of this URL instead")
	conns := flag.Int("conns", 50, "reference client: goroutines")
	duration := flag.Duration("duration", 10*time.Second, "reference client, generator: how long to send")
	gen := flag.String("gen", "", "be the lab's load generator in a bare program, sending to this URL")
	users := flag.Int("users", 1000, "generator: closed-model users")
	thinkMin := flag.Duration("think-min", 500*time.Millisecond, "generator: shortest think time")
	thinkMax := flag.Duration("think-max", 1500*time.Millisecond, "generator: longest think time")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *loop != "" {
		return plainLoop(ctx, *loop, *conns, *duration)
	}
	if *gen != "" {
		return bareGenerator(ctx, *gen, *users, *thinkMin, *thinkMax, *duration)
	}

	start := time.Now()
	body := []byte(`{"ok":true}`)
	// The target's own latency: from the handler's start to its end.
	var mu sync.Mutex
	own := hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3)
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		began := time.Now()
		defer func() {
			us := time.Since(began).Microseconds()
			mu.Lock()
			_ = own.RecordValue(max(us, 1))
			mu.Unlock()
		}()
		if *freeze > 0 {
			if in := time.Since(start) % time.Second; in < *freeze {
				time.Sleep(*freeze - in)
			}
		}
		if *delay > 0 {
			time.Sleep(*delay)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Printf("benchtarget listening on %s (delay %s, freeze %s)\n", ln.Addr(), *delay, *freeze)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	ms := func(q float64) float64 { return float64(own.ValueAtPercentile(q)) / 1000 }
	fmt.Printf("target requests=%d p50_ms=%.3f p99_ms=%.3f\n", own.TotalCount(), ms(50), ms(99))
	return nil
}

// plainLoop is the simplest fast Go client: goroutines sending requests back
// to back over a shared keep-alive transport, counting responses.
func plainLoop(ctx context.Context, url string, conns int, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns}}
	var total atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if err != nil {
					return
				}
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				total.Add(1)
			}
		})
	}
	wg.Wait()
	fmt.Printf("requests %d seconds %.3f\n", total.Load(), time.Since(start).Seconds())
	return nil
}
