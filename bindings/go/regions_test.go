package nexvitad_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	nexvitad "github.com/nexvitad/nexvitad/bindings/go"
)

// expectedRegions is what expected_tiled.json says about defect regions: image.rgb scored
// with tiled.bank at the pixel threshold RegionsPixelThresholdBits (min area 0).
type expectedRegions struct {
	RegionsPixelThresholdBits string `json:"regions_pixel_threshold_bits"`
	ImageThresholdBits        string `json:"image_threshold_bits"`
	Regions                   []struct {
		X             int    `json:"x"`
		Y             int    `json:"y"`
		Width         int    `json:"width"`
		Height        int    `json:"height"`
		Area          uint64 `json:"area"`
		PeakBits      string `json:"peak_bits"`
		MeanBits      string `json:"mean_bits"`
		CentroidXBits string `json:"centroid_x_bits"`
		CentroidYBits string `json:"centroid_y_bits"`
	} `json:"regions"`
}

func readExpectedRegions(t *testing.T) expectedRegions {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtureDir, "expected_tiled.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e expectedRegions
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatal(err)
	}
	if len(e.Regions) < 3 {
		t.Fatalf("expected_tiled.json lists %d regions, want several", len(e.Regions))
	}
	return e
}

func fromBits(t *testing.T, hex string) float32 {
	t.Helper()
	b, err := strconv.ParseUint(hex, 16, 32)
	if err != nil {
		t.Fatal(err)
	}
	return math.Float32frombits(uint32(b))
}

func bitsHex(f float32) string { return fmt.Sprintf("%08x", math.Float32bits(f)) }

func checkFixtureRegions(t *testing.T, what string, exp expectedRegions, got []nexvitad.Region) {
	t.Helper()
	if len(got) != len(exp.Regions) {
		t.Errorf("%s: %d regions, want %d", what, len(got), len(exp.Regions))
		return
	}
	for i, w := range exp.Regions {
		g := got[i]
		if g.X != w.X || g.Y != w.Y || g.Width != w.Width || g.Height != w.Height || g.Area != w.Area ||
			bitsHex(g.Peak) != w.PeakBits || bitsHex(g.Mean) != w.MeanBits ||
			bitsHex(g.CentroidX) != w.CentroidXBits || bitsHex(g.CentroidY) != w.CentroidYBits {
			t.Errorf("%s: region %d is %+v (peak %s mean %s centroid %s %s), want %+v", what, i, g,
				bitsHex(g.Peak), bitsHex(g.Mean), bitsHex(g.CentroidX), bitsHex(g.CentroidY), w)
		}
	}
}

func loadTiledBank(t *testing.T, m *nexvitad.Model) *nexvitad.Bank {
	t.Helper()
	b, err := m.LoadBank(filepath.Join(fixtureDir, "tiled.bank"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestFixtureRegions reproduces expected_tiled.json's region list to the last bit, in order,
// through the model, the bank alone, and a first region slice too small for them all.
func TestFixtureRegions(t *testing.T) {
	exp := readExpectedRegions(t)
	tiledExp := readExpectedFile(t, "expected_tiled.json")
	m := openTiny(t)
	b := loadTiledBank(t, m)
	pix, w, h := fixtureImage(t)
	raw := nexvitad.RawImage{Pix: pix, Width: w, Height: h, Format: nexvitad.RGB8}
	opts := &nexvitad.ScoreOptions{PixelThreshold: nexvitad.Float32(fromBits(t, exp.RegionsPixelThresholdBits))}

	res, err := m.ScoreRawImageWith(b, raw, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkFixtureRegions(t, "Model.ScoreRawImageWith", exp, res.Regions)
	checkFixture(t, "the score and map with regions", tiledExp, res)
	if res.ThresholdFlags != nexvitad.PixelThresholdFromCaller {
		t.Errorf("threshold flags %v, want only PixelThresholdFromCaller", res.ThresholdFlags)
	}
	if bitsHex(res.PixelThreshold) != exp.RegionsPixelThresholdBits {
		t.Errorf("pixel threshold %s, want the caller's %s", bitsHex(res.PixelThreshold), exp.RegionsPixelThresholdBits)
	}

	alone, err := b.ScoreWith(rgbToRGBA(pix, w, h), opts)
	if err != nil {
		t.Fatal(err)
	}
	checkFixtureRegions(t, "Bank.ScoreWith (an image.RGBA)", exp, alone.Regions)

	for _, c := range []int{1, 2, len(exp.Regions) - 1, len(exp.Regions)} {
		small := *opts
		small.RegionCapacity = c
		r, err := m.ScoreRawImageWith(b, raw, &small)
		if err != nil {
			t.Fatal(err)
		}
		checkFixtureRegions(t, fmt.Sprintf("first capacity %d", c), exp, r.Regions)
	}

	// MinRegionArea keeps the larger regions, in the same order.
	big := *opts
	big.MinRegionArea = 20
	r, err := m.ScoreRawImageWith(b, raw, &big)
	if err != nil {
		t.Fatal(err)
	}
	var want []nexvitad.Region
	for _, g := range res.Regions {
		if g.Area >= 20 {
			want = append(want, g)
		}
	}
	if len(want) == len(res.Regions) || fmt.Sprint(want) != fmt.Sprint(r.Regions) {
		t.Errorf("MinRegionArea 20: %v, want %v (of %d)", r.Regions, want, len(res.Regions))
	}

	// NoRegions: none looked for; the same score.
	none := *opts
	none.NoRegions = true
	r, err = m.ScoreRawImageWith(b, raw, &none)
	if err != nil || r.Regions != nil || bitsHex(r.Score) != tiledExp.ImageScoreBits {
		t.Errorf("NoRegions: %v regions, err %v", r, err)
	}
}

// TestScoreWithDefaultsEqualsScore: nil and zero options give Score's result and map bit
// for bit, with no caller thresholds; Score itself reports no flags and no regions.
func TestScoreWithDefaultsEqualsScore(t *testing.T) {
	m := openTiny(t)
	pix, w, h := fixtureImage(t)
	img := rgbToRGBA(pix, w, h)
	for name, b := range map[string]*nexvitad.Bank{"tiny.bank": loadFixtureBank(t, m), "tiled.bank": loadTiledBank(t, m)} {
		plain, err := m.Score(b, img)
		if err != nil {
			t.Fatal(err)
		}
		if plain.ThresholdFlags != 0 || plain.Regions != nil {
			t.Errorf("%s: Score gives flags %v and %d regions", name, plain.ThresholdFlags, len(plain.Regions))
		}
		for _, opts := range []*nexvitad.ScoreOptions{nil, {}} {
			with, err := m.ScoreWith(b, img, opts)
			if err != nil {
				t.Fatal(err)
			}
			sameResult(t, name+": ScoreWith defaults", plain, with)
			if with.ThresholdFlags != 0 || math.Float32bits(with.Threshold) != math.Float32bits(plain.Threshold) ||
				math.Float32bits(with.PixelThreshold) != math.Float32bits(plain.PixelThreshold) {
				t.Errorf("%s: defaults: flags %v thresholds %v/%v, want the bank's %v/%v", name, with.ThresholdFlags,
					with.Threshold, with.PixelThreshold, plain.Threshold, plain.PixelThreshold)
			}
			for _, g := range with.Regions {
				if !(g.Peak > with.PixelThreshold) || g.Mean > g.Peak || g.Area == 0 {
					t.Errorf("%s: region %+v at the bank's pixel threshold %v", name, g, with.PixelThreshold)
				}
			}
		}
	}
}

func TestScoreWithThresholds(t *testing.T) {
	m := openTiny(t)
	b := loadTiledBank(t, m)
	pix, w, h := fixtureImage(t)
	raw := nexvitad.RawImage{Pix: pix, Width: w, Height: h, Format: nexvitad.RGB8}
	info, err := b.Info()
	if err != nil {
		t.Fatal(err)
	}

	// Image threshold 0 is a real setting: the image is anomalous.
	r, err := b.ScoreRawImageWith(raw, &nexvitad.ScoreOptions{ImageThreshold: nexvitad.Float32(0)})
	if err != nil {
		t.Fatal(err)
	}
	if r.ThresholdFlags != nexvitad.ImageThresholdFromCaller || r.Threshold != 0 || !r.Anomalous ||
		math.Float32bits(r.PixelThreshold) != math.Float32bits(info.PixelThreshold) {
		t.Errorf("image threshold 0: flags %v threshold %v anomalous %v pixel threshold %v", r.ThresholdFlags, r.Threshold, r.Anomalous, r.PixelThreshold)
	}
	// Both thresholds the caller's.
	r, err = m.ScoreRawImageWith(b, raw, &nexvitad.ScoreOptions{ImageThreshold: nexvitad.Float32(100), PixelThreshold: nexvitad.Float32(0)})
	if err != nil {
		t.Fatal(err)
	}
	if r.ThresholdFlags != nexvitad.ImageThresholdFromCaller|nexvitad.PixelThresholdFromCaller || r.Anomalous || len(r.Regions) == 0 {
		t.Errorf("both thresholds: flags %v anomalous %v regions %d", r.ThresholdFlags, r.Anomalous, len(r.Regions))
	}
	// Negative = the bank's, as in C.
	r, err = m.ScoreRawImageWith(b, raw, &nexvitad.ScoreOptions{ImageThreshold: nexvitad.Float32(-5), PixelThreshold: nexvitad.Float32(float32(math.Inf(-1)))})
	if err != nil {
		t.Fatal(err)
	}
	if r.ThresholdFlags != 0 || math.Float32bits(r.Threshold) != math.Float32bits(info.ImageThreshold) {
		t.Errorf("negative thresholds: flags %v threshold %v, want the bank's %v", r.ThresholdFlags, r.Threshold, info.ImageThreshold)
	}
	if nexvitad.ImageThresholdFromCaller != 1 || nexvitad.PixelThresholdFromCaller != 2 {
		t.Errorf("threshold source bits %d, %d", nexvitad.ImageThresholdFromCaller, nexvitad.PixelThresholdFromCaller)
	}
}

func TestScoreWithErrors(t *testing.T) {
	m := openTiny(t)
	b := loadTiledBank(t, m)
	pix, w, h := fixtureImage(t)
	raw := nexvitad.RawImage{Pix: pix, Width: w, Height: h, Format: nexvitad.RGB8}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, c := range []struct {
		what string
		opts nexvitad.ScoreOptions
		msg  string
	}{
		{"image threshold NaN", nexvitad.ScoreOptions{ImageThreshold: &nan}, "image_threshold NaN must be finite and >= 0"},
		{"pixel threshold NaN", nexvitad.ScoreOptions{PixelThreshold: &nan}, "pixel_threshold NaN must be finite and >= 0"},
		{"image threshold +Inf", nexvitad.ScoreOptions{ImageThreshold: &inf}, "image_threshold inf must be finite and >= 0"},
		{"negative region capacity", nexvitad.ScoreOptions{RegionCapacity: -1}, "RegionCapacity -1 is negative"},
	} {
		res, err := m.ScoreRawImageWith(b, raw, &c.opts)
		if res != nil {
			t.Errorf("%s: a result came back", c.what)
		}
		wantStatus(t, c.what, err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
		wantMessage(t, c.what, err, c.msg)
	}
	// The library's own checks reach ScoreWith too: an image smaller than a tile.
	_, err := b.ScoreRawImageWith(nexvitad.RawImage{Pix: pix, Width: 40, Height: 40, Stride: w * 3, Format: nexvitad.RGB8}, nil)
	wantStatus(t, "image smaller than a tile", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	wantMessage(t, "image smaller than a tile", err, "tile 48x48 is larger than the 40x40 image")
	// A closed bank.
	other := loadFixtureBank(t, m)
	other.Close()
	_, err = m.ScoreRawImageWith(other, raw, nil)
	if !errors.Is(err, nexvitad.ErrClosed) {
		t.Errorf("closed bank: %v, want ErrClosed", err)
	}
}

// TestScoreBatchWith: every image of a batch decided at the caller's thresholds, each
// result's RegionCount the single-image call's count at the same options.
func TestScoreBatchWith(t *testing.T) {
	if nexvitad.LibraryABIRevision() < 5 {
		t.Fatalf("library ABI revision %d, want >= 5", nexvitad.LibraryABIRevision())
	}
	exp := readExpectedRegions(t)
	m := openTiny(t)
	b := loadTiledBank(t, m)
	pix, w, h := fixtureImage(t)
	raw := nexvitad.RawImage{Pix: pix, Width: w, Height: h, Format: nexvitad.RGB8}
	rgba := rgbToRGBA(pix, w, h)
	mirrored := image.NewRGBA(rgba.Rect)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			mirrored.Set(w-1-x, y, rgba.At(x, y))
		}
	}
	images := []image.Image{rgba, mirrored}
	opts := &nexvitad.ScoreOptions{ImageThreshold: nexvitad.Float32(0), PixelThreshold: nexvitad.Float32(fromBits(t, exp.RegionsPixelThresholdBits))}

	batch, err := m.ScoreBatchWith(b, images, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(batch) != len(images) {
		t.Fatalf("%d results for %d images", len(batch), len(images))
	}
	for i, r := range batch {
		what := fmt.Sprintf("image %d", i)
		if !r.Anomalous || r.Threshold != 0 || r.ThresholdFlags != nexvitad.ImageThresholdFromCaller|nexvitad.PixelThresholdFromCaller {
			t.Errorf("%s: anomalous %v threshold %v flags %v, want true, 0, both the caller's", what, r.Anomalous, r.Threshold, r.ThresholdFlags)
		}
		if r.Regions != nil {
			t.Errorf("%s: %d regions returned; a batch only counts them", what, len(r.Regions))
		}
		one, err := m.ScoreWith(b, images[i], opts)
		if err != nil {
			t.Fatal(err)
		}
		if r.RegionCount != len(one.Regions) || one.RegionCount != len(one.Regions) {
			t.Errorf("%s: RegionCount %d, want the single-image call's %d (its RegionCount %d)", what, r.RegionCount, len(one.Regions), one.RegionCount)
		}
		sameResult(t, what+": as ScoreWith", one, r)
	}
	if batch[0].RegionCount != len(exp.Regions) {
		t.Errorf("image.rgb: RegionCount %d, want expected_tiled.json's %d", batch[0].RegionCount, len(exp.Regions))
	}
	// Raw buffers: the same.
	raws, err := m.ScoreBatchRawWith(b, []nexvitad.RawImage{raw}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if raws[0].RegionCount != batch[0].RegionCount {
		t.Errorf("ScoreBatchRawWith: RegionCount %d, want %d", raws[0].RegionCount, batch[0].RegionCount)
	}
	sameResult(t, "ScoreBatchRawWith", batch[0], raws[0])

	// MinRegionArea counts only the larger regions.
	big := *opts
	big.MinRegionArea = 20
	counted, err := m.ScoreBatchWith(b, images, &big)
	if err != nil {
		t.Fatal(err)
	}
	for i := range images {
		one, err := m.ScoreWith(b, images[i], &big)
		if err != nil {
			t.Fatal(err)
		}
		if counted[i].RegionCount != len(one.Regions) {
			t.Errorf("MinRegionArea 20, image %d: RegionCount %d, want %d", i, counted[i].RegionCount, len(one.Regions))
		}
	}
	if counted[0].RegionCount >= len(exp.Regions) {
		t.Errorf("MinRegionArea 20: %d regions, want fewer than %d", counted[0].RegionCount, len(exp.Regions))
	}

	// nil and zero options: the plain batch's results at the bank's thresholds.
	plain, err := m.ScoreBatch(b, images)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []*nexvitad.ScoreOptions{nil, {}} {
		with, err := m.ScoreBatchWith(b, images, o)
		if err != nil {
			t.Fatal(err)
		}
		for i := range images {
			sameResult(t, fmt.Sprintf("default options, image %d", i), plain[i], with[i])
			if with[i].ThresholdFlags != 0 || plain[i].RegionCount != 0 {
				t.Errorf("default options, image %d: flags %v, plain RegionCount %d", i, with[i].ThresholdFlags, plain[i].RegionCount)
			}
		}
	}

	// The caller's ROI for every image (tiny.bank, roi.mask), as expected_roi.json.
	_, roiExp := readExpectedROI(t)
	tiny := loadFixtureBank(t, m)
	withROI, err := m.ScoreBatchRawWith(tiny, []nexvitad.RawImage{raw, raw}, &nexvitad.ScoreOptions{ROI: fixtureMask(t, roiExp)})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range withROI {
		if r.ROISource != nexvitad.ROIFromCaller || bitsHex(r.Score) != roiExp.CallerROIImageScoreBits || mapSHA256(r.Map) != roiExp.CallerROIMapSHA256 {
			t.Errorf("caller ROI, image %d: source %v, score bits %s, map %s; want caller, %s, %s", i,
				r.ROISource, bitsHex(r.Score), mapSHA256(r.Map), roiExp.CallerROIImageScoreBits, roiExp.CallerROIMapSHA256)
		}
	}
}

func TestScoreBatchWithErrors(t *testing.T) {
	m := openTiny(t)
	b := loadTiledBank(t, m)
	pix, w, h := fixtureImage(t)
	raw := nexvitad.RawImage{Pix: pix, Width: w, Height: h, Format: nexvitad.RGB8}
	raws := []nexvitad.RawImage{raw, raw}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, c := range []struct {
		what string
		opts nexvitad.ScoreOptions
		msg  string
	}{
		{"image threshold NaN", nexvitad.ScoreOptions{ImageThreshold: &nan}, "nexvitad_score_batch_with_options: invalid argument: image_threshold NaN must be finite and >= 0"},
		{"pixel threshold NaN", nexvitad.ScoreOptions{PixelThreshold: &nan}, "pixel_threshold NaN must be finite and >= 0"},
		{"image threshold +Inf", nexvitad.ScoreOptions{ImageThreshold: &inf}, "image_threshold inf must be finite and >= 0"},
		{"negative region capacity", nexvitad.ScoreOptions{RegionCapacity: -1}, "RegionCapacity -1 is negative"},
		{"a bad ROI", nexvitad.ScoreOptions{ROI: &nexvitad.Mask{Data: []byte{1}, Width: 2, Height: 2}}, "ScoreOptions.ROI"},
	} {
		res, err := m.ScoreBatchRawWith(b, raws, &c.opts)
		if res != nil {
			t.Errorf("%s: results came back", c.what)
		}
		wantStatus(t, c.what, err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
		wantMessage(t, c.what, err, c.msg)
	}
	_, err := m.ScoreBatchWith(b, nil, nil)
	wantStatus(t, "no images", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	_, err = m.ScoreBatchRawWith(b, []nexvitad.RawImage{raw, {Pix: []byte{1}, Width: 4, Height: 4, Format: nexvitad.Gray8}}, nil)
	wantStatus(t, "a short buffer", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	wantMessage(t, "a short buffer", err, "images[1]")
	other := loadFixtureBank(t, m)
	other.Close()
	if _, err := m.ScoreBatchRawWith(other, raws, nil); !errors.Is(err, nexvitad.ErrClosed) {
		t.Errorf("closed bank: %v, want ErrClosed", err)
	}
	// Still scores afterwards.
	if res, err := m.ScoreBatchRawWith(b, raws, &nexvitad.ScoreOptions{ImageThreshold: nexvitad.Float32(0)}); err != nil || !res[1].Anomalous {
		t.Errorf("after the errors: %v", err)
	}
}
