package nexvitad_test

import (
	"context"
	"encoding/json"
	"errors"
	"image"
	"os"
	"path/filepath"
	"testing"

	nexvitad "github.com/nexvitad/nexvitad/bindings/go"
)

// expectedGrow is what expected_grow.json adds to the plain fields (read with
// readExpectedFile): grow_add.rgb's size, and the shots and pixel threshold of grow2.bank
// with grow_add.rgb added.
type expectedGrow struct {
	GrowAddWidth       int    `json:"grow_add_width"`
	GrowAddHeight      int    `json:"grow_add_height"`
	Shots              int    `json:"shots"`
	PixelThresholdBits string `json:"pixel_threshold_bits"`
}

func readExpectedGrow(t *testing.T) (expected, expectedGrow) {
	t.Helper()
	plain := readExpectedFile(t, "expected_grow.json")
	data, err := os.ReadFile(filepath.Join(fixtureDir, "expected_grow.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e expectedGrow
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatal(err)
	}
	if e.GrowAddWidth <= 0 || e.GrowAddHeight <= 0 || e.Shots <= 0 || e.PixelThresholdBits == "" {
		t.Fatalf("expected_grow.json lacks the growth fields: %+v", e)
	}
	return plain, e
}

// growAdd is grow_add.rgb, packed RGB8, the third good image of the growth fixture.
func growAdd(t *testing.T, e expectedGrow) nexvitad.RawImage {
	t.Helper()
	pix, err := os.ReadFile(filepath.Join(fixtureDir, "grow_add.rgb"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pix) != e.GrowAddWidth*e.GrowAddHeight*3 {
		t.Fatalf("grow_add.rgb has %d bytes, want %dx%dx3", len(pix), e.GrowAddWidth, e.GrowAddHeight)
	}
	return nexvitad.RawImage{Pix: pix, Width: e.GrowAddWidth, Height: e.GrowAddHeight, Format: nexvitad.RGB8}
}

func growOptions() *nexvitad.BankOptions {
	o := fastBank()
	o.Growable = true
	return o
}

// tiledGrowOptions is growOptions with shared 48 px tiles overlapping by a quarter.
func tiledGrowOptions() *nexvitad.BankOptions {
	o := growOptions()
	o.Tile = 48
	o.TileOverlap = 0.25
	return o
}

// buildGrowable builds a growable bank of imgs and closes it when the test ends.
func buildGrowable(t *testing.T, m *nexvitad.Model, imgs ...image.Image) *nexvitad.Bank {
	t.Helper()
	b, err := m.BuildBank(context.Background(), imgs, growOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// sameBank fails unless got has want's sizes, settings and thresholds to the bit, and
// scores the fixture image to the same bits and map.
func sameBank(t *testing.T, what string, m *nexvitad.Model, want, got *nexvitad.Bank) {
	t.Helper()
	wi, err := want.Info()
	if err != nil {
		t.Fatal(err)
	}
	gi, err := got.Info()
	if err != nil {
		t.Fatal(err)
	}
	if gi.Shots != wi.Shots || gi.Vectors != wi.Vectors || gi.K != wi.K || gi.Growable != wi.Growable ||
		gi.Iterations != wi.Iterations || gi.Converged != wi.Converged ||
		bitsHex(gi.ImageThreshold) != bitsHex(wi.ImageThreshold) || bitsHex(gi.PixelThreshold) != bitsHex(wi.PixelThreshold) ||
		bitsHex(gi.TargetFPR) != bitsHex(wi.TargetFPR) {
		t.Errorf("%s: info %+v, want %+v", what, gi, wi)
	}
	pix, w, h := fixtureImage(t)
	raw := nexvitad.RawImage{Pix: pix, Width: w, Height: h, Format: nexvitad.RGB8}
	a, err := m.ScoreRawImage(want, raw)
	if err != nil {
		t.Fatal(err)
	}
	b, err := got.ScoreRawImage(raw)
	if err != nil {
		t.Fatal(err)
	}
	if bitsHex(a.Threshold) != bitsHex(b.Threshold) {
		t.Errorf("%s: decides at %v, want %v", what, b.Threshold, a.Threshold)
	}
	sameResult(t, what, a, b)
}

// TestGrowFixture reproduces expected_grow.json to the last bit: grow2.bank (growable, two
// good images) with grow_add.rgb added scores image.rgb as the Rust API does.
func TestGrowFixture(t *testing.T) {
	if nexvitad.LibraryABIRevision() < 5 {
		t.Fatalf("library ABI revision %d, want >= 5", nexvitad.LibraryABIRevision())
	}
	plain, exp := readExpectedGrow(t)
	m := openTiny(t)
	base, err := m.LoadBank(filepath.Join(fixtureDir, "grow2.bank"))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	bi, err := base.Info()
	if err != nil {
		t.Fatal(err)
	}
	if !bi.Growable || bi.Shots != 2 || bi.K != 8 {
		t.Errorf("grow2.bank info %+v: want growable, 2 shots, k 8", bi)
	}
	if ti, err := loadFixtureBank(t, m).Info(); err != nil || ti.Growable {
		t.Errorf("tiny.bank: growable %v (%v), want false", ti.Growable, err)
	}

	grown, err := base.AddRaw(context.Background(), growAdd(t, exp))
	if err != nil {
		t.Fatal(err)
	}
	defer grown.Close()
	if grown == base {
		t.Error("Add returned the same bank")
	}
	gi, err := grown.Info()
	if err != nil {
		t.Fatal(err)
	}
	if gi.Shots != exp.Shots || gi.Shots != 3 || !gi.Growable || bitsHex(gi.PixelThreshold) != exp.PixelThresholdBits ||
		bitsHex(gi.ImageThreshold) != plain.ImageThresholdBits {
		t.Errorf("grown info: shots %d, growable %v, pixel threshold %s, image threshold %s; want %d, true, %s, %s",
			gi.Shots, gi.Growable, bitsHex(gi.PixelThreshold), bitsHex(gi.ImageThreshold), exp.Shots, exp.PixelThresholdBits, plain.ImageThresholdBits)
	}
	if after, _ := base.Info(); after != bi {
		t.Errorf("grow2.bank changed: %+v, was %+v", after, bi)
	}

	pix, w, h := fixtureImage(t)
	raw := nexvitad.RawImage{Pix: pix, Width: w, Height: h, Format: nexvitad.RGB8}
	res, err := m.ScoreRawImage(grown, raw)
	checkGrowFixture(t, "Model.ScoreRawImage", plain, res, err)
	res, err = m.Score(grown, rgbToRGBA(pix, w, h))
	checkGrowFixture(t, "Model.Score RGBA", plain, res, err)
	res, err = grown.ScoreRawImage(raw)
	checkGrowFixture(t, "Bank.ScoreRawImage", plain, res, err)
	res, err = grown.ScoreRawImageWith(raw, &nexvitad.ScoreOptions{NoRegions: true})
	checkGrowFixture(t, "Bank.ScoreRawImageWith", plain, res, err)
	batch, err := m.ScoreBatchRaw(grown, []nexvitad.RawImage{raw, raw})
	if err != nil {
		t.Fatal(err)
	}
	checkGrowFixture(t, "Model.ScoreBatchRaw", plain, batch[1], nil)

	// The same image as an image.Image through Add: the same bank.
	ga := growAdd(t, exp)
	viaImage, err := base.Add(context.Background(), rgbToRGBA(ga.Pix, ga.Width, ga.Height))
	if err != nil {
		t.Fatal(err)
	}
	defer viaImage.Close()
	res, err = viaImage.ScoreRawImage(raw)
	checkGrowFixture(t, "Add(image.Image)", plain, res, err)

	// Saved and loaded back: still growable, the same bits.
	path := filepath.Join(t.TempDir(), "grow3.bank")
	if err := grown.Save(path); err != nil {
		t.Fatal(err)
	}
	loaded, err := m.LoadBank(path)
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Close()
	if li, err := loaded.Info(); err != nil || li != gi {
		t.Errorf("loaded info %+v (%v), want %+v", li, err, gi)
	}
	res, err = loaded.ScoreRawImage(raw)
	checkGrowFixture(t, "saved and loaded", plain, res, err)
}

func checkGrowFixture(t *testing.T, what string, exp expected, res *nexvitad.Result, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	checkFixture(t, what, exp, res)
}

// TestAddAndMergeEqualTheBuild: add(bank of 2, third image) and merge(bank of images 0-1,
// bank of image 2) give the bank built from all three at once.
func TestAddAndMergeEqualTheBuild(t *testing.T) {
	m := openTiny(t)
	imgs := []image.Image{texture(0, 64, 48), texture(1, 64, 48), texture(2, 64, 48)}
	three := buildGrowable(t, m, imgs...)
	two := buildGrowable(t, m, imgs[:2]...)
	last := buildGrowable(t, m, imgs[2])
	if ti, _ := three.Info(); !ti.Growable || ti.Shots != 3 {
		t.Errorf("three-image bank: %+v", ti)
	}

	var seen []nexvitad.Progress
	added, err := two.AddWith(context.Background(), imgs[2:], &nexvitad.GrowOptions{Progress: func(p nexvitad.Progress) { seen = append(seen, p) }})
	if err != nil {
		t.Fatal(err)
	}
	defer added.Close()
	sameBank(t, "Add(2-bank, third image)", m, three, added)
	var encode, calibrate bool
	for _, p := range seen {
		if p.Done > p.Total {
			t.Errorf("progress %+v: done above total", p)
		}
		switch p.Stage {
		case nexvitad.StageEncode:
			encode = true
			if p.Total != 1 {
				t.Errorf("Add encode progress %+v: want total 1 (the new image)", p)
			}
		case nexvitad.StageCalibrate:
			calibrate = true
			if p.Total != 3 {
				t.Errorf("Add calibrate progress %+v: want total 3 (all images)", p)
			}
		}
	}
	if !encode || !calibrate {
		t.Errorf("Add progress %v: want encode and calibrate stages", seen)
	}
	if ti, _ := two.Info(); ti.Shots != 2 {
		t.Errorf("the bank added to changed: %d shots", ti.Shots)
	}

	seen = nil
	merged, err := two.MergeWith(context.Background(), last, &nexvitad.GrowOptions{Progress: func(p nexvitad.Progress) { seen = append(seen, p) }})
	if err != nil {
		t.Fatal(err)
	}
	defer merged.Close()
	sameBank(t, "Merge(bank of 0-1, bank of 2)", m, three, merged)
	if len(seen) == 0 {
		t.Error("Merge reported no progress")
	}
	for _, p := range seen {
		if p.Stage == nexvitad.StageEncode {
			t.Errorf("Merge progress %+v: nothing is encoded again", p)
		}
	}
	plainMerge, err := two.Merge(context.Background(), last)
	if err != nil {
		t.Fatal(err)
	}
	defer plainMerge.Close()
	sameBank(t, "Merge without options", m, added, plainMerge)

	// Raw images, and a bank whose model was closed: it encodes with its own.
	m2, err := nexvitad.Open(modelDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	alone, err := m2.BuildBank(context.Background(), imgs[:2], growOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer alone.Close()
	m2.Close()
	raw, err := nexvitad.Raw(imgs[2])
	if err != nil {
		t.Fatal(err)
	}
	fromRaw, err := alone.AddRaw(context.Background(), raw)
	if err != nil {
		t.Fatalf("AddRaw after the model was closed: %v", err)
	}
	defer fromRaw.Close()
	sameBank(t, "AddRaw after the model was closed", m, three, fromRaw)

	// A bank merged with itself holds each image twice.
	twice, err := three.Merge(context.Background(), three)
	if err != nil {
		t.Fatal(err)
	}
	defer twice.Close()
	if ti, _ := twice.Info(); ti.Shots != 6 {
		t.Errorf("a bank merged with itself: %d shots, want 6", ti.Shots)
	}
}

// TestTiledBanksGrow: a growable shared tiled bank of two images, grown by a third (or
// merged with a bank of it), equals the growable tiled bank built on all three.
func TestTiledBanksGrow(t *testing.T) {
	m := openTiny(t)
	imgs := []image.Image{texture(0, 64, 48), texture(1, 64, 48), texture(2, 64, 48)}
	ctx := context.Background()
	build := func(imgs ...image.Image) *nexvitad.Bank {
		t.Helper()
		b, err := m.BuildBank(ctx, imgs, tiledGrowOptions())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	three := build(imgs...)
	two := build(imgs[:2]...)
	last := build(imgs[2])
	ti, err := three.Info()
	if err != nil {
		t.Fatal(err)
	}
	if !ti.Growable || !ti.Tiled() || ti.Tile != 48 || ti.TileOverlap != 0.25 || ti.TileLayout != nexvitad.TileShared || ti.Shots != 3 {
		t.Errorf("growable tiled bank of three: %+v", ti)
	}

	added, err := two.Add(ctx, imgs[2])
	if err != nil {
		t.Fatal(err)
	}
	defer added.Close()
	if ai, err := added.Info(); err != nil || ai.Tile != 48 || ai.TileOverlap != 0.25 || !ai.Growable {
		t.Errorf("the grown bank's tiling: %+v (%v)", ai, err)
	}
	sameBank(t, "Add(tiled 2-bank, third image)", m, three, added)
	// The third image through both banks: the same thresholds and score bits.
	a, err := added.Score(imgs[2])
	if err != nil {
		t.Fatal(err)
	}
	b, err := three.Score(imgs[2])
	if err != nil {
		t.Fatal(err)
	}
	if bitsHex(a.Score) != bitsHex(b.Score) || bitsHex(a.Threshold) != bitsHex(b.Threshold) || bitsHex(a.PixelThreshold) != bitsHex(b.PixelThreshold) {
		t.Errorf("third image: score/threshold/pixel threshold %s/%s/%s, want %s/%s/%s", bitsHex(a.Score), bitsHex(a.Threshold),
			bitsHex(a.PixelThreshold), bitsHex(b.Score), bitsHex(b.Threshold), bitsHex(b.PixelThreshold))
	}

	merged, err := two.Merge(ctx, last)
	if err != nil {
		t.Fatal(err)
	}
	defer merged.Close()
	sameBank(t, "Merge(tiled bank of 0-1, tiled bank of 2)", m, three, merged)
	if wi, _ := two.Info(); wi.Shots != 2 {
		t.Errorf("the bank added to changed: %d shots", wi.Shots)
	}
}

func TestGrowErrors(t *testing.T) {
	m := openTiny(t)
	imgs := []image.Image{texture(0, 64, 48), texture(1, 64, 48), texture(2, 64, 48)}
	growable := buildGrowable(t, m, imgs...)
	plain := buildBank(t, m, 3)
	if pi, _ := plain.Info(); pi.Growable {
		t.Error("a bank built without Growable is growable")
	}
	ctx := context.Background()

	// Add on a bank that is not growable.
	for _, c := range []struct {
		what string
		bank *nexvitad.Bank
	}{{"built without Growable", plain}, {"tiny.bank", loadFixtureBank(t, m)}} {
		nb, err := c.bank.Add(ctx, imgs[0])
		if nb != nil {
			t.Errorf("Add on %s: a bank came back", c.what)
		}
		wantStatus(t, "Add on "+c.what, err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
		wantMessage(t, "Add on "+c.what, err, "growable")
	}
	// Merge with a bank that is not growable, either side.
	_, err := growable.Merge(ctx, plain)
	wantStatus(t, "Merge with a bank that is not growable", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	wantMessage(t, "Merge with a bank that is not growable", err, "growable")
	_, err = plain.Merge(ctx, growable)
	wantStatus(t, "Merge of a bank that is not growable", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	wantMessage(t, "Merge of a bank that is not growable", err, "growable")

	// Merge of banks with another k: a mismatch naming k.
	o4 := growOptions()
	o4.K = 4
	k4, err := m.BuildBank(ctx, imgs, o4)
	if err != nil {
		t.Fatal(err)
	}
	defer k4.Close()
	nb, err := growable.Merge(ctx, k4)
	if nb != nil {
		t.Error("Merge of banks with another k: a bank came back")
	}
	wantStatus(t, "Merge of banks with another k", err, nexvitad.StatusMismatch, nexvitad.ErrMismatch)
	wantMessage(t, "Merge of banks with another k", err, "different k")
	_, err = k4.Merge(ctx, growable)
	wantStatus(t, "Merge of banks with another k, swapped", err, nexvitad.StatusMismatch, nexvitad.ErrMismatch)
	wantMessage(t, "Merge of banks with another k, swapped", err, "different k")

	// tiled.bank was built without Growable: refused as any such bank (for that, not its tiling).
	tiled, err := m.LoadBank(filepath.Join(fixtureDir, "tiled.bank"))
	if err != nil {
		t.Fatal(err)
	}
	defer tiled.Close()
	if ti, err := tiled.Info(); err != nil || !ti.Tiled() || ti.Growable {
		t.Errorf("tiled.bank info %+v (%v): want tiled, not growable", ti, err)
	}
	_, err = tiled.Add(ctx, imgs[0])
	wantStatus(t, "Add on tiled.bank", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	wantMessage(t, "Add on tiled.bank", err, "growable")
	_, err = growable.Merge(ctx, tiled)
	wantStatus(t, "Merge with tiled.bank", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	wantMessage(t, "Merge with tiled.bank", err, "growable")
	// A growable tiled bank and a growable whole-image bank: a mismatch naming the tiling.
	tiledGrowable, err := m.BuildBank(ctx, imgs, tiledGrowOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer tiledGrowable.Close()
	_, err = growable.Merge(ctx, tiledGrowable)
	wantStatus(t, "Merge of a whole-image and a tiled bank", err, nexvitad.StatusMismatch, nexvitad.ErrMismatch)
	wantMessage(t, "Merge of a whole-image and a tiled bank", err, "tiling")
	_, err = tiledGrowable.Merge(ctx, growable)
	wantStatus(t, "Merge of a tiled and a whole-image bank", err, nexvitad.StatusMismatch, nexvitad.ErrMismatch)
	wantMessage(t, "Merge of a tiled and a whole-image bank", err, "tiling")
	// A per-position bank grows only with images of its own size.
	pp := growOptions()
	pp.Tile = 48
	pp.TileLayout = nexvitad.TilePerPosition
	perPosition, err := m.BuildBank(ctx, imgs[:2], pp)
	if err != nil {
		t.Fatal(err)
	}
	defer perPosition.Close()
	_, err = perPosition.Add(ctx, texture(3, 96, 48))
	wantStatus(t, "Add of another size to a per-position bank", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	wantMessage(t, "Add of another size to a per-position bank", err, "one bank per tile position of 64x48 images; images[0] is 96x48")

	// What the binding checks before C.
	_, err = growable.Add(ctx)
	wantStatus(t, "Add of no images", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	_, err = growable.AddRaw(ctx, nexvitad.RawImage{Pix: []byte{1, 2}, Width: 4, Height: 4, Format: nexvitad.Gray8})
	wantStatus(t, "AddRaw of a short buffer", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	wantMessage(t, "AddRaw of a short buffer", err, "images[0]")
	var noCtx context.Context
	_, err = growable.Add(noCtx, imgs[0])
	wantStatus(t, "Add with a nil context", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	_, err = growable.Merge(ctx, nil)
	wantStatus(t, "Merge with a nil bank", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	var nilBank *nexvitad.Bank
	_, err = nilBank.Add(ctx, imgs[0])
	wantStatus(t, "Add on a nil bank", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	_, err = nilBank.Merge(ctx, growable)
	wantStatus(t, "Merge of a nil bank", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)

	// Closed banks, either side.
	closed := buildGrowable(t, m, imgs[0])
	closed.Close()
	_, err = closed.Add(ctx, imgs[1])
	wantClosed(t, "Add on a closed bank", err)
	_, err = closed.Merge(ctx, growable)
	wantClosed(t, "Merge of a closed bank", err)
	_, err = growable.Merge(ctx, closed)
	wantClosed(t, "Merge with a closed bank", err)

	// Nothing was spoiled.
	if gi, err := growable.Info(); err != nil || gi.Shots != 3 || !gi.Growable {
		t.Errorf("the growable bank after the errors: %+v (%v)", gi, err)
	}
}

func TestGrowCancelAndPanic(t *testing.T) {
	m := openTiny(t)
	imgs := []image.Image{texture(0, 64, 48), texture(1, 64, 48), texture(2, 64, 48)}
	two := buildGrowable(t, m, imgs[:2]...)
	one := buildGrowable(t, m, imgs[2])

	// Cancelled from inside: the first progress report cancels the context.
	for _, c := range []struct {
		what string
		call func(context.Context, *nexvitad.GrowOptions) (*nexvitad.Bank, error)
	}{
		{"Add", func(ctx context.Context, o *nexvitad.GrowOptions) (*nexvitad.Bank, error) {
			return two.AddWith(ctx, imgs[2:], o)
		}},
		{"Merge", func(ctx context.Context, o *nexvitad.GrowOptions) (*nexvitad.Bank, error) {
			return two.MergeWith(ctx, one, o)
		}},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		nb, err := c.call(ctx, &nexvitad.GrowOptions{Progress: func(nexvitad.Progress) { calls++; cancel() }})
		if nb != nil {
			t.Errorf("cancelled %s returned a bank", c.what)
		}
		wantStatus(t, "cancelled "+c.what, err, nexvitad.StatusCancelled, nexvitad.ErrCancelled)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled %s: %v does not wrap context.Canceled", c.what, err)
		}
		if calls != 1 {
			t.Errorf("%s: progress called %d times, want 1", c.what, calls)
		}
		// Already done before the call: nothing runs.
		_, err = c.call(ctx, &nexvitad.GrowOptions{Progress: func(nexvitad.Progress) { t.Errorf("%s: progress for a cancelled context", c.what) }})
		wantStatus(t, "pre-cancelled "+c.what, err, nexvitad.StatusCancelled, nexvitad.ErrCancelled)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("pre-cancelled %s: %v does not wrap context.Canceled", c.what, err)
		}
		// A panic in Progress is carried across C and re-raised here.
		func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Errorf("%s: recovered %v, want the callback's panic", c.what, r)
				}
			}()
			c.call(context.Background(), &nexvitad.GrowOptions{Progress: func(nexvitad.Progress) { panic("boom") }})
			t.Errorf("%s returned instead of panicking", c.what)
		}()
	}

	// The banks still grow afterwards.
	merged, err := two.Merge(context.Background(), one)
	if err != nil {
		t.Fatal(err)
	}
	defer merged.Close()
	if mi, _ := merged.Info(); mi.Shots != 3 {
		t.Errorf("merge after cancellations: %d shots, want 3", mi.Shots)
	}
}
