package nexvitad_test

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"path/filepath"
	"strings"
	"testing"

	nexvitad "github.com/nexvitad/nexvitad/bindings/go"
)

// checkFixture fails unless res is the Rust API's score of image.rgb recorded in exp.
func checkFixture(t *testing.T, what string, exp expected, res *nexvitad.Result) {
	t.Helper()
	if got := fmt.Sprintf("%08x", math.Float32bits(res.Score)); got != exp.ImageScoreBits {
		t.Errorf("%s: image_score bits %s (%v), want %s", what, got, res.Score, exp.ImageScoreBits)
	}
	if got := fmt.Sprintf("%08x", math.Float32bits(res.Threshold)); got != exp.ImageThresholdBits {
		t.Errorf("%s: image_threshold bits %s, want %s", what, got, exp.ImageThresholdBits)
	}
	if res.Anomalous != exp.IsAnomalous {
		t.Errorf("%s: anomalous %v, want %v", what, res.Anomalous, exp.IsAnomalous)
	}
	if res.Width != exp.Width || res.Height != exp.Height || len(res.Map) != exp.MapLen {
		t.Errorf("%s: map %dx%d (%d values), want %dx%d (%d)", what, res.Width, res.Height, len(res.Map), exp.Width, exp.Height, exp.MapLen)
	}
	if got := mapSHA256(res.Map); got != exp.MapSHA256 {
		t.Errorf("%s: map sha256 %s, want %s", what, got, exp.MapSHA256)
	}
}

// wantMessage fails unless err's message contains want.
func wantMessage(t *testing.T, what string, err error, want string) {
	t.Helper()
	var e *nexvitad.Error
	if !errors.As(err, &e) || !strings.Contains(e.Message, want) {
		t.Errorf("%s: error %v does not say %q", what, err, want)
	}
}

// TestTiledFixture scores the shared fixture image with tiled.bank (48 px tiles at
// overlap 0.25, one shared bank) and checks the Rust API's result to the last bit.
func TestTiledFixture(t *testing.T) {
	exp := readExpectedFile(t, "expected_tiled.json")
	m := openTiny(t)
	b, err := m.LoadBank(filepath.Join(fixtureDir, "tiled.bank"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	info, err := b.Info()
	if err != nil {
		t.Fatal(err)
	}
	if !info.Tiled() || info.Tile != 48 || info.TileH != 48 || info.TileOverlap != 0.25 || info.TileLayout != nexvitad.TileShared ||
		info.TileCols != 0 || info.TileRows != 0 || info.ImageW != 0 || info.ImageH != 0 || info.K != 8 || info.Shots != 3 {
		t.Errorf("tiled.bank info %+v: want 48x48 tiles at overlap 0.25, shared, K 8, 3 shots", info)
	}
	pix, w, h := fixtureImage(t)
	res, err := m.ScoreRaw(b, pix, w, h, 0, nexvitad.RGB8)
	if err != nil {
		t.Fatal(err)
	}
	checkFixture(t, "tiled.bank", exp, res)
	alone, err := b.ScoreRawImage(nexvitad.RawImage{Pix: pix, Width: w, Height: h, Format: nexvitad.RGB8})
	if err != nil {
		t.Fatal(err)
	}
	checkFixture(t, "tiled.bank with its own model", exp, alone)

	// Saved again and loaded back: the same bits.
	copyPath := filepath.Join(t.TempDir(), "tiled-copy.bank")
	if err := b.Save(copyPath); err != nil {
		t.Fatal(err)
	}
	again, err := m.LoadBank(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	res, err = m.ScoreRaw(again, pix, w, h, 0, nexvitad.RGB8)
	if err != nil {
		t.Fatal(err)
	}
	checkFixture(t, "tiled.bank saved and loaded", exp, res)

	// The whole-image fixture bank reports no tiling.
	whole, err := loadFixtureBank(t, m).Info()
	if err != nil {
		t.Fatal(err)
	}
	if whole.Tiled() || whole.TileH != 0 || whole.TileOverlap != 0 || whole.TileLayout != nexvitad.TileShared ||
		whole.TileCols != 0 || whole.TileRows != 0 || whole.ImageW != 0 || whole.ImageH != 0 {
		t.Errorf("tiny.bank info %+v reports a tiling", whole)
	}
}

func TestTiledBanks(t *testing.T) {
	m := openTiny(t)
	ctx := context.Background()
	imgs := []image.Image{texture(1, 96, 72), texture(2, 96, 72), texture(3, 96, 72)}
	probe := texture(9, 96, 72)

	// Shared: 96x72 in 48 px tiles at overlap 0.25 is 3 x 2 tiles per image.
	opts := fastBank()
	opts.Tile, opts.TileOverlap = 48, 0.25
	encodeTotal := 0
	opts.Progress = func(p nexvitad.Progress) {
		if p.Stage == nexvitad.StageEncode {
			encodeTotal = p.Total
		}
	}
	shared, err := m.BuildBank(ctx, imgs, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	if encodeTotal != 3*6 {
		t.Errorf("encode progress total %d, want %d tiles", encodeTotal, 3*6)
	}
	info, err := shared.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Tile != 48 || info.TileH != 48 || info.TileOverlap != 0.25 || info.TileLayout != nexvitad.TileShared || info.ImageW != 0 || info.Vectors != 8 {
		t.Errorf("shared tile bank info %+v", info)
	}
	if res, err := m.Score(shared, texture(4, 80, 64)); err != nil || res.Width != 80 || res.Height != 64 {
		t.Errorf("a shared tile bank scores any size: %v", err)
	}
	_, err = m.Score(shared, texture(4, 40, 40))
	wantStatus(t, "image smaller than a tile", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	wantMessage(t, "image smaller than a tile", err, "tile 48x48 is larger than the 40x40 image")

	// Per-position: 2 x 2 positions, and only 96x72 images score.
	opts = fastBank()
	opts.Tile, opts.TileLayout = 48, nexvitad.TilePerPosition
	perPos, err := m.BuildBank(ctx, imgs, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer perPos.Close()
	info, err = perPos.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.TileLayout != nexvitad.TilePerPosition || info.TileCols != 2 || info.TileRows != 2 || info.ImageW != 96 || info.ImageH != 72 || info.Vectors != 4*8 {
		t.Errorf("per-position bank info %+v: want 2x2 positions of 96x72 images, 32 vectors", info)
	}
	_, err = m.Score(perPos, texture(5, 80, 64))
	wantStatus(t, "per-position bank, another size", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	wantMessage(t, "per-position bank, another size", err, "one bank per tile position of 96x72 images; an image of 80x64 cannot be scored")
	_, err = perPos.Score(texture(5, 80, 64))
	wantStatus(t, "per-position bank alone, another size", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	_, err = m.ScoreBatch(perPos, []image.Image{probe, texture(5, 96, 64)})
	wantStatus(t, "per-position bank, another size in a batch", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)

	// Both save and load with their tiling and score identically.
	for name, b := range map[string]*nexvitad.Bank{"shared": shared, "per_position": perPos} {
		path := filepath.Join(t.TempDir(), name+".bank")
		if err := b.Save(path); err != nil {
			t.Fatal(err)
		}
		loaded, err := m.LoadBank(path)
		if err != nil {
			t.Fatal(err)
		}
		li, err1 := loaded.Info()
		bi, err2 := b.Info()
		if err1 != nil || err2 != nil || li != bi {
			t.Errorf("%s: loaded info %+v, saved %+v (%v, %v)", name, li, bi, err1, err2)
		}
		want, err1 := m.Score(b, probe)
		got, err2 := m.Score(loaded, probe)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v, %v", name, err1, err2)
		}
		sameResult(t, name+" tile bank saved and loaded", want, got)
		loaded.Close()
	}
}

func TestTileOptionErrors(t *testing.T) {
	m := openTiny(t)
	ctx := context.Background()
	imgs := []image.Image{texture(1, 96, 72), texture(2, 96, 72)}
	for _, c := range []struct {
		what   string
		opts   nexvitad.BankOptions
		images []image.Image
		status nexvitad.Status
		is     error
		msg    string
	}{
		{"overlap 1", nexvitad.BankOptions{Tile: 48, TileOverlap: 1}, imgs, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument, "options->tile_overlap 1 must be in [0, 1)"},
		{"overlap NaN", nexvitad.BankOptions{Tile: 48, TileOverlap: float32(math.NaN())}, imgs, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument, "options->tile_overlap is NaN"},
		{"overlap NaN without tiling", nexvitad.BankOptions{TileOverlap: float32(math.NaN())}, imgs, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument, "options->tile_overlap is NaN"},
		{"tile 20000 (no fixed bound)", nexvitad.BankOptions{Tile: 20000}, imgs, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument, "images[0]: tile 20000x20000 is larger than the 96x72 image"},
		{"layout 7", nexvitad.BankOptions{Tile: 48, TileLayout: 7}, imgs, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument, "options->tile_layout 7 is not a nexvitad_tile_layout"},
		{"tile larger than the images", nexvitad.BankOptions{Tile: 224}, imgs, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument, "tile 224x224 is larger than the 96x72 image"},
		{"too many tiles", nexvitad.BankOptions{Tile: 2, TileOverlap: 0.9}, imgs, nexvitad.StatusLimitExceeded, nexvitad.ErrLimitExceeded, "MAX_TILES"},
		{"per-position from two sizes", nexvitad.BankOptions{Tile: 48, TileLayout: nexvitad.TilePerPosition},
			[]image.Image{texture(1, 96, 72), texture(2, 80, 64)}, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument, "needs images of one size: images[0] is 96x72, images[1] is 80x64"},
	} {
		b, err := m.BuildBank(ctx, c.images, &c.opts)
		if b != nil {
			t.Errorf("%s: a bank came back", c.what)
			b.Close()
		}
		wantStatus(t, c.what, err, c.status, c.is)
		wantMessage(t, c.what, err, c.msg)
	}
	if nexvitad.TileShared.String() != "shared" || nexvitad.TilePerPosition.String() != "per_position" {
		t.Errorf("TileLayout names %q, %q", nexvitad.TileShared, nexvitad.TilePerPosition)
	}
}

// TestTileBatchScoresAsTheDefault opens the model with Options.TileBatch 1 (one tile per
// encoder call) and 256 (the largest) and scores tiled.bank: the image scores equal the
// default's to float rounding, alone and in a batch whose images share encoder calls.
func TestTileBatchScoresAsTheDefault(t *testing.T) {
	if rev := nexvitad.LibraryABIRevision(); rev < 6 {
		t.Fatalf("library ABI revision %d, want >= 6", rev)
	}
	m := openTiny(t) // the default tile batch
	b, err := m.LoadBank(filepath.Join(fixtureDir, "tiled.bank"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pix, w, h := fixtureImage(t)
	whole := nexvitad.RawImage{Pix: pix, Width: w, Height: h, Format: nexvitad.RGB8}
	// The fixture image and two crops of it (the stride keeps whole rows): 6 + 4 + 4 tiles.
	batch := []nexvitad.RawImage{whole,
		{Pix: pix, Width: 80, Height: 64, Stride: 3 * w, Format: nexvitad.RGB8},
		{Pix: pix[3*(w*8+16):], Width: 64, Height: 64, Stride: 3 * w, Format: nexvitad.RGB8}}
	want, err := m.ScoreRawImage(b, whole)
	if err != nil {
		t.Fatal(err)
	}
	wantBatch, err := m.ScoreBatchRaw(b, batch)
	if err != nil {
		t.Fatal(err)
	}
	closeTo := func(got, ref float32) bool {
		return math.Abs(float64(got)-float64(ref)) <= 1e-4*math.Abs(float64(ref))
	}
	for _, n := range []int{1, 256} {
		mn, err := nexvitad.Open(modelDir, &nexvitad.Options{TileBatch: n})
		if err != nil {
			t.Fatalf("TileBatch %d: %v", n, err)
		}
		if mn.Fingerprint() != m.Fingerprint() {
			t.Errorf("TileBatch %d: fingerprint %s, want %s", n, mn.Fingerprint(), m.Fingerprint())
		}
		res, err := mn.ScoreRawImage(b, whole)
		if err != nil {
			t.Fatalf("TileBatch %d: %v", n, err)
		}
		if !closeTo(res.Score, want.Score) {
			t.Errorf("TileBatch %d: image score %v, the default's %v (beyond 1e-4 relative)", n, res.Score, want.Score)
		}
		if res.Threshold != want.Threshold || res.Width != want.Width || res.Height != want.Height || len(res.Map) != len(want.Map) {
			t.Errorf("TileBatch %d: threshold %v, map %dx%d (%d); the default's %v, %dx%d (%d)", n,
				res.Threshold, res.Width, res.Height, len(res.Map), want.Threshold, want.Width, want.Height, len(want.Map))
		}
		got, err := mn.ScoreBatchRaw(b, batch)
		if err != nil {
			t.Fatalf("TileBatch %d: batch: %v", n, err)
		}
		if len(got) != len(wantBatch) {
			t.Fatalf("TileBatch %d: %d batch results, want %d", n, len(got), len(wantBatch))
		}
		for i := range got {
			if !closeTo(got[i].Score, wantBatch[i].Score) {
				t.Errorf("TileBatch %d: batch image %d score %v, the default's %v", n, i, got[i].Score, wantBatch[i].Score)
			}
		}
		if err := mn.Close(); err != nil {
			t.Error(err)
		}
	}
}

// TestTileBatchOutOfRange: above the library's cap of 256 (and negative, which the binding
// refuses before C) Open fails with an error matching ErrInvalidArgument.
func TestTileBatchOutOfRange(t *testing.T) {
	m, err := nexvitad.Open(modelDir, &nexvitad.Options{TileBatch: 257})
	if m != nil {
		m.Close()
		t.Error("TileBatch 257: Open returned a model")
	}
	wantStatus(t, "TileBatch 257", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	wantMessage(t, "TileBatch 257", err, "tile_batch 257")
	_, err = nexvitad.Open(modelDir, &nexvitad.Options{TileBatch: -1})
	wantStatus(t, "TileBatch -1", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	wantMessage(t, "TileBatch -1", err, "Options.TileBatch -1")
}

// TestParallelEncodersScoresAsTheDefault opens the model with Options.ParallelEncoders (the
// two encoders side by side, C ABI revision 6) and scores the cross-language tiny.bank and
// image: the image score equals the default's (one after the other) within 1e-5 relative.
func TestParallelEncodersScoresAsTheDefault(t *testing.T) {
	if rev := nexvitad.LibraryABIRevision(); rev < 6 {
		t.Fatalf("library ABI revision %d, want >= 6", rev)
	}
	m := openTiny(t) // ParallelEncoders false, the zero value
	b, err := m.LoadBank(filepath.Join(fixtureDir, "tiny.bank"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pix, w, h := fixtureImage(t)
	img := nexvitad.RawImage{Pix: pix, Width: w, Height: h, Format: nexvitad.RGB8}
	want, err := m.ScoreRawImage(b, img)
	if err != nil {
		t.Fatal(err)
	}
	mp, err := nexvitad.Open(modelDir, &nexvitad.Options{ParallelEncoders: true})
	if err != nil {
		t.Fatalf("ParallelEncoders: %v", err)
	}
	defer mp.Close()
	if mp.Fingerprint() != m.Fingerprint() {
		t.Errorf("ParallelEncoders: fingerprint %s, want %s", mp.Fingerprint(), m.Fingerprint())
	}
	bp, err := mp.LoadBank(filepath.Join(fixtureDir, "tiny.bank"))
	if err != nil {
		t.Fatal(err)
	}
	defer bp.Close()
	res, err := mp.ScoreRawImage(bp, img)
	if err != nil {
		t.Fatalf("ParallelEncoders: %v", err)
	}
	if math.Abs(float64(res.Score)-float64(want.Score)) > 1e-5*math.Abs(float64(want.Score)) {
		t.Errorf("ParallelEncoders: image score %v, the default's %v (beyond 1e-5 relative)", res.Score, want.Score)
	}
	if res.Threshold != want.Threshold || res.Width != want.Width || res.Height != want.Height || len(res.Map) != len(want.Map) {
		t.Errorf("ParallelEncoders: threshold %v, map %dx%d (%d); the default's %v, %dx%d (%d)",
			res.Threshold, res.Width, res.Height, len(res.Map), want.Threshold, want.Width, want.Height, len(want.Map))
	}
}
