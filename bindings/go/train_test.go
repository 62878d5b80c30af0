package nexvitad_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	nexvitad "github.com/nexvitad/nexvitad/bindings/go"
)

// trainRoot is the committed synthetic training set (tests/fixtures/train/make.sh).
var trainRoot = filepath.Join("..", "..", "tests", "fixtures", "train", "data")

// quickTrain is a short run: one epoch of batch 4, a narrow decoder, one perturbed copy.
func quickTrain(out string) *nexvitad.TrainOptions {
	return &nexvitad.TrainOptions{
		DataRoot: trainRoot, Sources: []string{"stripes", "weave"}, Target: "grain", OutDir: out,
		Epochs: 1, Batch: 4, DecoderWidth: 8, Copies: 1, CheckpointEvery: nexvitad.Int(0), Seed: 3,
	}
}

func TestTrainWritesAModelThatScores(t *testing.T) {
	base := openTiny(t)
	out := filepath.Join(t.TempDir(), "trained")
	var seen []nexvitad.TrainProgress
	opts := quickTrain(out)
	opts.Progress = func(p nexvitad.TrainProgress) { seen = append(seen, p) }
	r, err := nexvitad.Train(context.Background(), base, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) == 0 || seen[0].Phase != nexvitad.TrainEncode || seen[len(seen)-1].Phase != nexvitad.TrainStep {
		t.Fatalf("progress: %d reports, want encoding then steps", len(seen))
	}
	last := seen[len(seen)-1]
	if r.Steps != last.Total || last.Done != last.Total || r.StepsRun != r.Steps || r.Epochs != 1 || r.TargetImages != 3 || r.SourceImages == 0 {
		t.Errorf("result %+v, last progress %+v", r, last)
	}
	if math.IsNaN(r.LastEpoch.Loss) || r.LastEpoch.Loss != last.EpochMean.Loss || r.LastEpoch.Coverage < 0 || r.LastEpoch.Coverage > 1 {
		t.Errorf("last epoch %+v, running mean %+v", r.LastEpoch, last.EpochMean)
	}
	trained, err := nexvitad.Open(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer trained.Close()
	if trained.Fingerprint() == base.Fingerprint() {
		t.Error("the trained model has the base model's fingerprint")
	}
	bank := buildBank(t, trained, 2)
	res, err := trained.Score(bank, texture(9, 64, 48))
	if err != nil {
		t.Fatal(err)
	}
	if math.IsNaN(float64(res.Score)) || len(res.Map) != 64*48 {
		t.Errorf("score %v, map of %d values", res.Score, len(res.Map))
	}
}

func TestTrainCancelledByContextResumesToTheSameHead(t *testing.T) {
	base := openTiny(t)
	dir := t.TempDir()
	full, part := filepath.Join(dir, "full"), filepath.Join(dir, "part")
	whole, err := nexvitad.Train(context.Background(), base, quickTrain(full))
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := quickTrain(part)
	opts.Progress = func(p nexvitad.TrainProgress) {
		if p.Phase == nexvitad.TrainStep && p.Done == 1 {
			cancel()
		}
	}
	_, err = nexvitad.Train(ctx, base, opts)
	wantStatus(t, "cancelled training", err, nexvitad.StatusCancelled, nexvitad.ErrCancelled)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not wrap context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(part, "checkpoint.safetensors")); err != nil {
		t.Fatalf("no checkpoint after cancelling: %v", err)
	}

	opts = quickTrain(part)
	opts.Resume = true
	r, err := nexvitad.Train(context.Background(), base, opts)
	if err != nil {
		t.Fatal(err)
	}
	if r.Steps != whole.Steps || r.StepsRun != whole.Steps-1 {
		t.Errorf("resumed %d of %d steps, want %d of %d", r.StepsRun, r.Steps, whole.Steps-1, whole.Steps)
	}
	a, errA := os.ReadFile(filepath.Join(full, "head.safetensors"))
	b, errB := os.ReadFile(filepath.Join(part, "head.safetensors"))
	if errA != nil || errB != nil || !bytes.Equal(a, b) {
		t.Errorf("resumed head differs from the unbroken run's (%v, %v)", errA, errB)
	}
}

func TestTrainBadInput(t *testing.T) {
	base := openTiny(t)
	out := filepath.Join(t.TempDir(), "bad")
	opts := quickTrain(out)
	opts.Sources = []string{"stripes", "grain"}
	_, err := nexvitad.Train(context.Background(), base, opts)
	wantStatus(t, "target among sources", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)

	opts = quickTrain(out)
	opts.Theta = 1.5
	_, err = nexvitad.Train(context.Background(), base, opts)
	wantStatus(t, "theta 1.5", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)

	opts = quickTrain(out)
	opts.DataRoot = filepath.Join(out, "no-such-root")
	_, err = nexvitad.Train(context.Background(), base, opts)
	wantStatus(t, "missing root", err, nexvitad.StatusIO, nexvitad.ErrIO)

	_, err = nexvitad.Train(context.Background(), base, nil)
	wantStatus(t, "nil options", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)

	closed, err := nexvitad.Open(modelDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	_, err = nexvitad.Train(context.Background(), closed, quickTrain(out))
	if !errors.Is(err, nexvitad.ErrClosed) {
		t.Errorf("training a closed model: %v, want ErrClosed", err)
	}
}

// The feature cache (C ABI revision 7): a shared folder encodes once, the budget does not
// change the result, a cache of other data is refused and a budget below one step too.
func TestTrainFeatureCache(t *testing.T) {
	if rev := nexvitad.LibraryABIRevision(); rev < 7 {
		t.Fatalf("library ABI revision %d, want >= 7", rev)
	}
	base := openTiny(t)
	dir := t.TempDir()
	shared := filepath.Join(dir, "cache")
	first := quickTrain(filepath.Join(dir, "first"))
	first.CacheDir = shared
	r1, err := nexvitad.Train(context.Background(), base, first)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(shared, "features.nxcache"))
	if err != nil || uint64(st.Size()) != r1.CacheBytes {
		t.Fatalf("cache file %v (%v), result says %d bytes", st, err, r1.CacheBytes)
	}
	// 16 source images, 3 target images with one copy each.
	if r1.Encoded != 22 || r1.Reused != 0 {
		t.Errorf("first run encoded %d, reused %d; want 22, 0", r1.Encoded, r1.Reused)
	}
	if _, err := os.Stat(filepath.Join(dir, "first", "features.nxcache")); !os.IsNotExist(err) {
		t.Errorf("the cache went to OutDir too: %v", err)
	}

	// The least budget: one step's 10 feature sets; every other one is read from the file.
	perSet := (r1.CacheBytes - 4096) / 22
	second := quickTrain(filepath.Join(dir, "second"))
	second.CacheDir, second.CacheMem = shared, 10*perSet
	r2, err := nexvitad.Train(context.Background(), base, second)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Encoded != 0 || r2.Reused != 22 {
		t.Errorf("second run encoded %d, reused %d; want 0, 22", r2.Encoded, r2.Reused)
	}
	a, errA := os.ReadFile(filepath.Join(dir, "first", "head.safetensors"))
	b, errB := os.ReadFile(filepath.Join(dir, "second", "head.safetensors"))
	if errA != nil || errB != nil || !bytes.Equal(a, b) {
		t.Errorf("the head trained from the file differs from the one held in memory (%v, %v)", errA, errB)
	}

	other := quickTrain(filepath.Join(dir, "other"))
	other.CacheDir, other.Seed = shared, 4
	_, err = nexvitad.Train(context.Background(), base, other)
	wantStatus(t, "a cache of other data", err, nexvitad.StatusMismatch, nexvitad.ErrMismatch)

	small := quickTrain(filepath.Join(dir, "small"))
	small.CacheMem = 1 << 20
	_, err = nexvitad.Train(context.Background(), base, small)
	wantStatus(t, "a budget below one step", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)

	nul := quickTrain(filepath.Join(dir, "nul"))
	nul.CacheDir = "a\x00b"
	_, err = nexvitad.Train(context.Background(), base, nul)
	wantStatus(t, "NUL in CacheDir", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
}
