// Command inspectd is a small HTTP inspection service on top of the nexvitad Go binding:
// POST a PNG or JPEG image of a part and get its anomaly score as JSON, or a PNG heatmap.
//
//	inspectd -model models/tiny -bank part.bank -addr 127.0.0.1:8080
//	curl --data-binary @part.png http://127.0.0.1:8080/inspect
//	  {"score":2.71,"threshold":2.95,"anomalous":false,"width":96,"height":72}
//	curl --data-binary @part.png -o heat.png http://127.0.0.1:8080/heatmap
//
// It listens on loopback by default; put a real front end before exposing it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	nexvitad "github.com/nexvitad/nexvitad/bindings/go"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "inspectd:", err)
		}
		os.Exit(2)
	}
}

// run serves until ctx is done, then shuts down gracefully. ready, if set, receives the
// listening address (useful with port 0).
func run(ctx context.Context, args []string, logw io.Writer, ready func(addr string)) error {
	fs := flag.NewFlagSet("inspectd", flag.ContinueOnError)
	fs.SetOutput(logw)
	modelDir := fs.String("model", "models/tiny", "model folder (model.json, hiera.onnx, dinov2.onnx)")
	bankPath := fs.String("bank", "", "memory bank file built for the model (required)")
	addr := fs.String("addr", "127.0.0.1:8080", "listen address (port 0 picks a free port)")
	maxBody := fs.Int64("max-body", 32<<20, "largest accepted request body in bytes")
	maxSide := fs.Int("max-side", 8192, "largest accepted image width or height")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "images scored at once")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bankPath == "" {
		return errors.New("-bank is required")
	}
	if *workers < 1 || *maxBody < 1 || *maxSide < 1 {
		return errors.New("-workers, -max-body and -max-side must be positive")
	}
	logger := log.New(logw, "inspectd: ", log.LstdFlags)

	model, err := nexvitad.Open(*modelDir, nil)
	if err != nil {
		return err
	}
	defer model.Close()
	bank, err := model.LoadBank(*bankPath)
	if err != nil {
		return err
	}
	defer bank.Close()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           newHandler(model, bank, limits{body: *maxBody, side: *maxSide, workers: *workers}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		ErrorLog:          logger,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Printf("model %s (%.12s...), bank %s, listening on http://%s", *modelDir, model.Fingerprint(), *bankPath, ln.Addr())
	if ready != nil {
		ready(ln.Addr().String())
	}

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	logger.Printf("stopped")
	return nil
}
