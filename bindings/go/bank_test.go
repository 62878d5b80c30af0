package nexvitad_test

import (
	"context"
	"encoding/json"
	"errors"
	"image"
	"math"
	"os"
	"path/filepath"
	"testing"

	nexvitad "github.com/nexvitad/nexvitad/bindings/go"
)

func TestBuildSaveLoad(t *testing.T) {
	m := openTiny(t)
	imgs := []image.Image{texture(1, 64, 48), texture(2, 64, 48), texture(3, 48, 64)}
	opts := fastBank()
	stages := map[nexvitad.Stage]int{}
	opts.Progress = func(p nexvitad.Progress) {
		if p.Done < 0 || p.Done > p.Total {
			t.Errorf("progress %+v out of range", p)
		}
		stages[p.Stage]++
	}
	b, err := m.BuildBank(context.Background(), imgs, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, s := range []nexvitad.Stage{nexvitad.StageEncode, nexvitad.StageCluster, nexvitad.StageCalibrate} {
		if stages[s] == 0 {
			t.Errorf("no progress report for stage %d (got %v)", s, stages)
		}
	}
	info, err := b.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Shots != 3 || info.K != 8 || info.Seed != 42 || info.Scorer != nexvitad.ScorerSinkhorn || info.Vectors != 8 {
		t.Errorf("info %+v: want 3 shots, K 8 (8 vectors), seed 42, Sinkhorn", info)
	}

	path := filepath.Join(t.TempDir(), "part.bank")
	if err := b.Save(path); err != nil {
		t.Fatal(err)
	}
	loaded, err := m.LoadBank(path)
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Close()
	loadedInfo, err := loaded.Info()
	if err != nil {
		t.Fatal(err)
	}
	if loadedInfo != info {
		t.Errorf("loaded info %+v, saved %+v", loadedInfo, info)
	}

	// Deterministic: a second build with the same seed gives the same bank.
	again, err := m.BuildBank(context.Background(), imgs, fastBank())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()

	probe := texture(99, 72, 56)
	want, err := m.Score(b, probe)
	if err != nil {
		t.Fatal(err)
	}
	for name, bank := range map[string]*nexvitad.Bank{"loaded": loaded, "rebuilt": again} {
		got, err := m.Score(bank, probe)
		if err != nil {
			t.Fatal(err)
		}
		sameResult(t, name+" bank", want, got)
	}
	if want.Threshold != info.ImageThreshold || want.PixelThreshold != info.PixelThreshold {
		t.Errorf("result thresholds %v/%v, bank info %v/%v", want.Threshold, want.PixelThreshold, info.ImageThreshold, info.PixelThreshold)
	}
}

func TestBuildRawAndBadInput(t *testing.T) {
	m := openTiny(t)
	pix, w, h := fixtureImage(t)
	raw := nexvitad.RawImage{Pix: pix, Width: w, Height: h, Format: nexvitad.RGB8}
	b, err := m.BuildBankRaw(context.Background(), []nexvitad.RawImage{raw, raw}, fastBank())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if info, err := b.Info(); err != nil || info.Shots != 2 {
		t.Errorf("raw-built bank info %+v, %v", info, err)
	}

	ctx := context.Background()
	_, err = m.BuildBank(ctx, nil, nil)
	wantStatus(t, "no images", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	_, err = m.BuildBank(ctx, []image.Image{texture(1, 64, 48), image.NewRGBA(image.Rectangle{})}, nil)
	wantStatus(t, "an empty image", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	short := raw
	short.Pix = pix[:len(pix)-1]
	_, err = m.BuildBankRaw(ctx, []nexvitad.RawImage{raw, short}, nil)
	wantStatus(t, "a short buffer", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	// Values the library checks: K above the number of patch vectors, a bad scorer.
	_, err = m.BuildBankRaw(ctx, []nexvitad.RawImage{raw}, &nexvitad.BankOptions{K: 100000})
	wantStatus(t, "K too large", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	_, err = m.BuildBankRaw(ctx, []nexvitad.RawImage{raw}, &nexvitad.BankOptions{Scorer: 9})
	wantStatus(t, "unknown scorer", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	// As in C: a negative sigma is the model's default; NaN is refused.
	neg, err := m.BuildBankRaw(ctx, []nexvitad.RawImage{raw}, &nexvitad.BankOptions{Sigma: nexvitad.Float32(-3), MaxIters: 5})
	if err != nil {
		t.Fatalf("negative sigma (the model's): %v", err)
	}
	def, err := m.BuildBankRaw(ctx, []nexvitad.RawImage{raw}, &nexvitad.BankOptions{MaxIters: 5})
	if err != nil {
		t.Fatal(err)
	}
	ni, err1 := neg.Info()
	di, err2 := def.Info()
	if err1 != nil || err2 != nil || ni.Sigma != di.Sigma {
		t.Errorf("negative sigma gave %v, the default %v (%v, %v)", ni.Sigma, di.Sigma, err1, err2)
	}
	neg.Close()
	def.Close()
	_, err = m.BuildBankRaw(ctx, []nexvitad.RawImage{raw}, &nexvitad.BankOptions{Sigma: nexvitad.Float32(float32(math.NaN()))})
	wantStatus(t, "NaN sigma", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
}

func TestBuildCancel(t *testing.T) {
	m := openTiny(t)
	imgs := []image.Image{texture(1, 64, 48), texture(2, 64, 48)}

	// Cancelled from inside the build: the first progress report cancels the context,
	// and the build stops there.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := fastBank()
	calls := 0
	opts.Progress = func(nexvitad.Progress) { calls++; cancel() }
	b, err := m.BuildBank(ctx, imgs, opts)
	if b != nil {
		t.Error("a cancelled build returned a bank")
	}
	wantStatus(t, "cancelled build", err, nexvitad.StatusCancelled, nexvitad.ErrCancelled)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not wrap context.Canceled", err)
	}
	if calls != 1 {
		t.Errorf("progress called %d times after cancelling, want 1", calls)
	}

	// Already done before the call: nothing runs.
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	opts.Progress = func(nexvitad.Progress) { t.Error("progress called for a cancelled context") }
	_, err = m.BuildBank(ctx2, imgs, opts)
	wantStatus(t, "pre-cancelled build", err, nexvitad.StatusCancelled, nexvitad.ErrCancelled)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not wrap context.Canceled", err)
	}

	// The model is still fine afterwards.
	if _, err := m.BuildBank(context.Background(), imgs, fastBank()); err != nil {
		t.Fatalf("build after cancellations: %v", err)
	}
}

// A panic in the Progress callback must not unwind through the C library: it is carried
// across and re-raised on the caller's side of BuildBank.
func TestBuildProgressPanic(t *testing.T) {
	m := openTiny(t)
	opts := fastBank()
	opts.Progress = func(nexvitad.Progress) { panic("boom") }
	defer func() {
		if r := recover(); r != "boom" {
			t.Errorf("recovered %v, want the callback's panic", r)
		}
	}()
	m.BuildBank(context.Background(), []image.Image{texture(1, 64, 48)}, opts)
	t.Error("BuildBank returned instead of panicking")
}

// wrongModel copies models/tiny with fusion.local_avg changed: a model with another
// fingerprint.
func wrongModel(t *testing.T) *nexvitad.Model {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(modelDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(modelDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "model.json" {
			var cfg map[string]any
			if err := json.Unmarshal(data, &cfg); err != nil {
				t.Fatal(err)
			}
			fusion, ok := cfg["fusion"].(map[string]any)
			if !ok || fusion["local_avg"] != 3.0 {
				t.Fatalf("model.json fusion %v: expected local_avg 3", cfg["fusion"])
			}
			fusion["local_avg"] = 1
			if data, err = json.MarshalIndent(cfg, "", "  "); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := nexvitad.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestWrongModelBank(t *testing.T) {
	m := openTiny(t)
	other := wrongModel(t)
	if m.Fingerprint() == other.Fingerprint() || len(m.Fingerprint()) != 64 {
		t.Fatalf("fingerprints %q and %q should differ", m.Fingerprint(), other.Fingerprint())
	}
	_, err := other.LoadBank(filepath.Join(fixtureDir, "tiny.bank"))
	wantStatus(t, "loading another model's bank", err, nexvitad.StatusMismatch, nexvitad.ErrMismatch)
	if errors.Is(err, nexvitad.ErrInvalidArgument) {
		t.Error("a mismatch also matches ErrInvalidArgument")
	}

	b := loadFixtureBank(t, m)
	_, err = other.Score(b, texture(1, 64, 48))
	wantStatus(t, "scoring with another model's bank", err, nexvitad.StatusMismatch, nexvitad.ErrMismatch)
}

func TestFileErrors(t *testing.T) {
	m := openTiny(t)
	dir := t.TempDir()
	_, err := m.LoadBank(filepath.Join(dir, "missing.bank"))
	wantStatus(t, "missing bank", err, nexvitad.StatusIO, nexvitad.ErrIO)

	junk := filepath.Join(dir, "junk.bank")
	if err := os.WriteFile(junk, []byte("this is not a bank file"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = m.LoadBank(junk)
	wantStatus(t, "corrupt bank", err, nexvitad.StatusFormat, nexvitad.ErrFormat)

	_, err = m.LoadBank("")
	wantStatus(t, "empty path", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)

	b := loadFixtureBank(t, m)
	err = b.Save(filepath.Join(dir, "no", "such", "dir", "x.bank"))
	wantStatus(t, "save into a missing folder", err, nexvitad.StatusIO, nexvitad.ErrIO)

	_, err = nexvitad.Open(filepath.Join(dir, "no-model"), nil)
	wantStatus(t, "missing model folder", err, nexvitad.StatusIO, nexvitad.ErrIO)
	_, err = nexvitad.Open(modelDir, &nexvitad.Options{OptimizationLevel: nexvitad.Int(7)})
	wantStatus(t, "bad optimisation level", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	_, err = nexvitad.Open(modelDir, &nexvitad.Options{ExecutionProvider: "tpu:0"})
	if err == nil {
		t.Error("an unknown execution provider was accepted")
	}
}
