package nexvitad_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	nexvitad "github.com/nexvitad/nexvitad/bindings/go"
)

// The tests run in bindings/go; the model and the shared fixture live at the repository
// root.
var (
	modelDir   = filepath.Join("..", "..", "models", "tiny")
	fixtureDir = filepath.Join("..", "..", "tests", "fixtures", "crosslang")
)

// expected is tests/fixtures/crosslang/expected.json: the Rust API's score of image.rgb.
type expected struct {
	Format             string `json:"format"`
	Width              int    `json:"width"`
	Height             int    `json:"height"`
	ImageScoreBits     string `json:"image_score_bits"`
	ImageThresholdBits string `json:"image_threshold_bits"`
	IsAnomalous        bool   `json:"is_anomalous"`
	MapLen             int    `json:"map_len"`
	MapSHA256          string `json:"map_sha256"`
}

func readExpected(t *testing.T) expected {
	t.Helper()
	return readExpectedFile(t, "expected.json")
}

// readExpectedFile reads expected.json (tiny.bank) or expected_tiled.json (tiled.bank).
func readExpectedFile(t *testing.T, name string) expected {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var e expected
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatal(err)
	}
	if e.Format != "rgb8" {
		t.Fatalf("%s format %q, this test reads rgb8", name, e.Format)
	}
	return e
}

// fixtureImage returns image.rgb (packed RGB8) and its size.
func fixtureImage(t *testing.T) ([]byte, int, int) {
	t.Helper()
	e := readExpected(t)
	pix, err := os.ReadFile(filepath.Join(fixtureDir, "image.rgb"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pix) != e.Width*e.Height*3 {
		t.Fatalf("image.rgb has %d bytes, want %d", len(pix), e.Width*e.Height*3)
	}
	return pix, e.Width, e.Height
}

// rgbToRGBA makes an opaque *image.RGBA of packed RGB8 pixels.
func rgbToRGBA(pix []byte, w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < w*h; i++ {
		copy(img.Pix[4*i:4*i+3], pix[3*i:3*i+3])
		img.Pix[4*i+3] = 255
	}
	return img
}

func openTiny(t testing.TB) *nexvitad.Model {
	t.Helper()
	m, err := nexvitad.Open(modelDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func loadFixtureBank(t testing.TB, m *nexvitad.Model) *nexvitad.Bank {
	t.Helper()
	b, err := m.LoadBank(filepath.Join(fixtureDir, "tiny.bank"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// texture is a deterministic stand-in for a photo of a normal part: smooth gradients
// plus seeded noise.
func texture(seed uint64, w, h int) *image.RGBA {
	rng := rand.New(rand.NewPCG(seed, 7))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			n := uint8(rng.IntN(24))
			img.SetRGBA(x, y, color.RGBA{uint8(x*2) + n, uint8(y*3) + n, uint8(120 + (x+y)%40), 255})
		}
	}
	return img
}

// fastBank are options that keep bank builds quick on the tiny model.
func fastBank() *nexvitad.BankOptions {
	return &nexvitad.BankOptions{K: 8, MaxIters: 10, Seed: 42}
}

func buildBank(t testing.TB, m *nexvitad.Model, n int) *nexvitad.Bank {
	t.Helper()
	imgs := make([]image.Image, n)
	for i := range imgs {
		imgs[i] = texture(uint64(i), 64, 48)
	}
	b, err := m.BuildBank(context.Background(), imgs, fastBank())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// mapSHA256 hashes the map's float32 little-endian bytes, as expected.json does.
func mapSHA256(m []float32) string {
	buf := make([]byte, 4*len(m))
	for i, v := range m {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:])
}

// sameResult fails unless a and b agree to the last bit.
func sameResult(t *testing.T, what string, a, b *nexvitad.Result) {
	t.Helper()
	if math.Float32bits(a.Score) != math.Float32bits(b.Score) || a.Anomalous != b.Anomalous ||
		a.Width != b.Width || a.Height != b.Height || mapSHA256(a.Map) != mapSHA256(b.Map) {
		t.Errorf("%s: results differ: score %v vs %v, %dx%d vs %dx%d", what, a.Score, b.Score, a.Width, a.Height, b.Width, b.Height)
	}
}

// wantStatus fails unless err is an *Error of status st matching sentinel.
func wantStatus(t *testing.T, what string, err error, st nexvitad.Status, sentinel error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want %v", what, st)
		return
	}
	var e *nexvitad.Error
	if !errors.As(err, &e) {
		t.Errorf("%s: error %T %v is not a *nexvitad.Error", what, err, err)
		return
	}
	if e.Status != st || !errors.Is(err, sentinel) || e.Message == "" {
		t.Errorf("%s: got %v (status %v, message %q), want status %v matching %v", what, err, e.Status, e.Message, st, sentinel)
	}
}
