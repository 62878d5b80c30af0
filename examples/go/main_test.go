package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var (
	root       = filepath.Join("..", "..")
	modelDir   = filepath.Join(root, "models", "tiny")
	fixtureDir = filepath.Join(root, "tests", "fixtures", "crosslang")
)

type expected struct {
	Width, Height  int
	ImageScoreBits string `json:"image_score_bits"`
	IsAnomalous    bool   `json:"is_anomalous"`
}

// fixture returns the shared cross-language image as a PNG and JPEG, and what the Rust
// API scored it.
func fixture(t *testing.T) (pngBody, jpegBody []byte, exp expected) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtureDir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &exp); err != nil {
		t.Fatal(err)
	}
	pix, err := os.ReadFile(filepath.Join(fixtureDir, "image.rgb"))
	if err != nil {
		t.Fatal(err)
	}
	img := image.NewNRGBA(image.Rect(0, 0, exp.Width, exp.Height))
	for i := 0; i < exp.Width*exp.Height; i++ {
		copy(img.Pix[4*i:4*i+3], pix[3*i:3*i+3])
		img.Pix[4*i+3] = 255
	}
	var p, j bytes.Buffer
	if err := png.Encode(&p, img); err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(&j, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return p.Bytes(), j.Bytes(), exp
}

// startServer runs the service as main does, on a free loopback port, and returns its
// base URL and a stop function that shuts it down and reports run's result.
func startServer(t *testing.T, extra ...string) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	var logs bytes.Buffer
	args := append([]string{"-model", modelDir, "-bank", filepath.Join(fixtureDir, "tiny.bank"), "-addr", "127.0.0.1:0"}, extra...)
	go func() { done <- run(ctx, args, &logs, func(a string) { addrc <- a }) }()
	select {
	case addr := <-addrc:
		stopped := false
		stop := func() error {
			if stopped {
				return nil
			}
			stopped = true
			cancel()
			return <-done
		}
		t.Cleanup(func() { stop() })
		return "http://" + addr, stop
	case err := <-done:
		cancel()
		t.Fatalf("server did not start: %v\n%s", err, logs.String())
	}
	return "", nil
}

func post(t *testing.T, url, ctype string, body []byte) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(url, ctype, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

func TestService(t *testing.T) {
	pngBody, jpegBody, exp := fixture(t)
	base, stop := startServer(t)

	// PNG: lossless, so the score is the Rust API's to the last bit.
	resp, data := post(t, base+"/inspect", "image/png", pngBody)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("PNG: %s %s: %s", resp.Status, resp.Header.Get("Content-Type"), data)
	}
	var got inspection
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if bits := fmt.Sprintf("%08x", math.Float32bits(got.Score)); bits != exp.ImageScoreBits {
		t.Errorf("PNG score %v (bits %s), want bits %s", got.Score, bits, exp.ImageScoreBits)
	}
	if got.Anomalous != exp.IsAnomalous || got.Width != exp.Width || got.Height != exp.Height || !(got.Threshold > 0) {
		t.Errorf("PNG answer %+v, want anomalous %v, %dx%d", got, exp.IsAnomalous, exp.Width, exp.Height)
	}

	// JPEG: lossy, so only the shape and a sane score are checked.
	resp, data = post(t, base+"/inspect", "image/jpeg", jpegBody)
	var gotJ inspection
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &gotJ) != nil {
		t.Fatalf("JPEG: %s: %s", resp.Status, data)
	}
	if gotJ.Width != exp.Width || gotJ.Height != exp.Height || !(gotJ.Score > 0) || gotJ.Threshold != got.Threshold {
		t.Errorf("JPEG answer %+v", gotJ)
	}

	// Heatmap: a PNG of the image's size.
	resp, data = post(t, base+"/heatmap", "image/png", pngBody)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("heatmap: %s %s: %.200s", resp.Status, resp.Header.Get("Content-Type"), data)
	}
	heat, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("heatmap is not a PNG: %v", err)
	}
	if heat.Bounds().Dx() != exp.Width || heat.Bounds().Dy() != exp.Height {
		t.Errorf("heatmap %v, want %dx%d", heat.Bounds(), exp.Width, exp.Height)
	}
	if resp.Header.Get("X-Nexvitad-Score") != fmt.Sprint(got.Score) {
		t.Errorf("heatmap score header %q, want %v", resp.Header.Get("X-Nexvitad-Score"), got.Score)
	}

	// Bad requests: a JSON error, never a crash.
	bad := []struct {
		name, path string
		body       []byte
		status     int
	}{
		{"text body", "/inspect", []byte("hello, this is not an image"), http.StatusBadRequest},
		{"empty body", "/inspect", nil, http.StatusBadRequest},
		{"truncated PNG", "/inspect", pngBody[:len(pngBody)/2], http.StatusBadRequest},
		{"text to heatmap", "/heatmap", []byte("{}"), http.StatusBadRequest},
	}
	for _, c := range bad {
		resp, data := post(t, base+c.path, "application/octet-stream", c.body)
		var e struct{ Error string }
		if resp.StatusCode != c.status || json.Unmarshal(data, &e) != nil || e.Error == "" {
			t.Errorf("%s: %s %q, want %d with a JSON error", c.name, resp.Status, data, c.status)
		}
	}
	resp, err = http.Get(base + "/inspect")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /inspect: %s, want 405", resp.Status)
	}

	resp, err = http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var health struct{ Status, Model string }
	json.NewDecoder(resp.Body).Decode(&health)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || health.Status != "ok" || len(health.Model) != 64 {
		t.Errorf("healthz: %s %+v", resp.Status, health)
	}

	// Clean shutdown: run returns nil and the port stops answering.
	if err := stop(); err != nil {
		t.Fatalf("run after shutdown: %v", err)
	}
	if resp, err := http.Post(base+"/inspect", "image/png", bytes.NewReader(pngBody)); err == nil {
		resp.Body.Close()
		t.Error("server still answers after shutdown")
	}
}

func TestServiceLimits(t *testing.T) {
	pngBody, _, _ := fixture(t)
	base, _ := startServer(t, "-max-side", "64", "-max-body", "100000")
	resp, data := post(t, base+"/inspect", "image/png", pngBody)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(data), "above 64 px") {
		t.Errorf("image above -max-side: %s %s", resp.Status, data)
	}
	resp, data = post(t, base+"/inspect", "image/png", make([]byte, 100001))
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("body above -max-body: %s %s", resp.Status, data)
	}
}

func TestRunBadFlags(t *testing.T) {
	bank := filepath.Join(fixtureDir, "tiny.bank")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no bank", []string{"-model", modelDir}, "-bank is required"},
		{"missing model", []string{"-model", filepath.Join(t.TempDir(), "none"), "-bank", bank}, "NEXVITAD_IO"},
		{"missing bank", []string{"-model", modelDir, "-bank", filepath.Join(t.TempDir(), "none.bank")}, "NEXVITAD_IO"},
		{"bad address", []string{"-model", modelDir, "-bank", bank, "-addr", "127.0.0.1:notaport"}, "notaport"},
		{"unknown flag", []string{"-frobnicate"}, "frobnicate"},
	} {
		err := run(context.Background(), c.args, io.Discard, func(string) { t.Errorf("%s: server started", c.name) })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
}
