package nexvitad_test

import (
	"bytes"
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

// expectedROI is what expected_roi.json adds to the plain fields (read with
// readExpectedFile): roi.bank's mask size, image.rgb scored with tiny.bank and roi.mask
// given per call (caller_roi_*), and with roi.bank with its ROI switched off (ignore_roi_*).
type expectedROI struct {
	ROIWidth                int    `json:"roi_width"`
	ROIHeight               int    `json:"roi_height"`
	CallerROIImageScoreBits string `json:"caller_roi_image_score_bits"`
	CallerROIMapSHA256      string `json:"caller_roi_map_sha256"`
	IgnoreROIImageScoreBits string `json:"ignore_roi_image_score_bits"`
	IgnoreROIMapSHA256      string `json:"ignore_roi_map_sha256"`
}

func readExpectedROI(t *testing.T) (expected, expectedROI) {
	t.Helper()
	plain := readExpectedFile(t, "expected_roi.json")
	data, err := os.ReadFile(filepath.Join(fixtureDir, "expected_roi.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e expectedROI
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatal(err)
	}
	if e.ROIWidth <= 0 || e.ROIHeight <= 0 || e.CallerROIMapSHA256 == "" || e.IgnoreROIMapSHA256 == "" {
		t.Fatalf("expected_roi.json lacks the ROI fields: %+v", e)
	}
	return plain, e
}

// fixtureMask is roi.mask: roi_width x roi_height bytes, 1 = inspect.
func fixtureMask(t *testing.T, e expectedROI) *nexvitad.Mask {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtureDir, "roi.mask"))
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != e.ROIWidth*e.ROIHeight {
		t.Fatalf("roi.mask has %d bytes, want %dx%d", len(data), e.ROIWidth, e.ROIHeight)
	}
	return &nexvitad.Mask{Data: data, Width: e.ROIWidth, Height: e.ROIHeight}
}

func loadROIBank(t *testing.T, m *nexvitad.Model) *nexvitad.Bank {
	t.Helper()
	b, err := m.LoadBank(filepath.Join(fixtureDir, "roi.bank"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func checkROIPlain(t *testing.T, what string, exp expected, res *nexvitad.Result, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if res.ROISource != nexvitad.ROIFromBank {
		t.Errorf("%s: ROI source %v, want bank", what, res.ROISource)
	}
	checkFixture(t, what, exp, res)
}

// TestROIFixture reproduces expected_roi.json to the last bit: roi.bank with its own ROI,
// roi.mask given per call to tiny.bank, roi.bank with its ROI switched off, and roi.bank's
// mask read back.
func TestROIFixture(t *testing.T) {
	if nexvitad.LibraryABIRevision() < 4 {
		t.Fatalf("library ABI revision %d, want >= 4", nexvitad.LibraryABIRevision())
	}
	plain, exp := readExpectedROI(t)
	mask := fixtureMask(t, exp)
	m := openTiny(t)
	b := loadROIBank(t, m)
	pix, w, h := fixtureImage(t)
	raw := nexvitad.RawImage{Pix: pix, Width: w, Height: h, Format: nexvitad.RGB8}

	info, err := b.Info()
	if err != nil {
		t.Fatal(err)
	}
	if !info.HasROI() || info.ROIWidth != exp.ROIWidth || info.ROIHeight != exp.ROIHeight {
		t.Errorf("roi.bank info: ROI %dx%d, want %dx%d", info.ROIWidth, info.ROIHeight, exp.ROIWidth, exp.ROIHeight)
	}
	got, err := b.ROI()
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || got.Width != exp.ROIWidth || got.Height != exp.ROIHeight || !bytes.Equal(got.Data, mask.Data) {
		t.Errorf("roi.bank's ROI %+v is not roi.mask", got)
	}

	// Default options: the bank's own ROI, through every path.
	res, err := m.ScoreRawImage(b, raw)
	checkROIPlain(t, "Model.ScoreRawImage", plain, res, err)
	res, err = b.ScoreRawImage(raw)
	checkROIPlain(t, "Bank.ScoreRawImage", plain, res, err)
	res, err = m.ScoreRawImageWith(b, raw, nil)
	checkROIPlain(t, "Model.ScoreRawImageWith nil", plain, res, err)
	res, err = b.ScoreRawImageWith(raw, &nexvitad.ScoreOptions{NoRegions: true})
	checkROIPlain(t, "Bank.ScoreRawImageWith NoRegions", plain, res, err)
	batch, err := m.ScoreBatchRaw(b, []nexvitad.RawImage{raw, raw})
	if err != nil {
		t.Fatal(err)
	}
	checkROIPlain(t, "Model.ScoreBatchRaw", plain, batch[1], nil)

	// roi.bank with its ROI switched off.
	res, err = m.ScoreRawImageWith(b, raw, &nexvitad.ScoreOptions{IgnoreBankROI: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.ROISource != nexvitad.ROINone || bitsHex(res.Score) != exp.IgnoreROIImageScoreBits || mapSHA256(res.Map) != exp.IgnoreROIMapSHA256 {
		t.Errorf("IgnoreBankROI: source %v, score bits %s, map %s; want none, %s, %s",
			res.ROISource, bitsHex(res.Score), mapSHA256(res.Map), exp.IgnoreROIImageScoreBits, exp.IgnoreROIMapSHA256)
	}

	// tiny.bank (no ROI) with roi.mask per call: packed, and as padded rows.
	tiny := loadFixtureBank(t, m)
	if ti, err := tiny.Info(); err != nil || ti.HasROI() || ti.ROIWidth != 0 {
		t.Errorf("tiny.bank info %+v, %v: want no ROI", ti, err)
	}
	if r, err := tiny.ROI(); r != nil || err != nil {
		t.Errorf("tiny.bank ROI %+v, %v: want nil, nil", r, err)
	}
	stride := exp.ROIWidth + 3
	padded := make([]byte, stride*exp.ROIHeight)
	for y := 0; y < exp.ROIHeight; y++ {
		copy(padded[y*stride:], mask.Data[y*exp.ROIWidth:(y+1)*exp.ROIWidth])
	}
	for _, c := range []struct {
		what string
		mask *nexvitad.Mask
	}{
		{"packed", mask},
		{"stride", &nexvitad.Mask{Data: padded, Width: exp.ROIWidth, Height: exp.ROIHeight, Stride: stride}},
	} {
		res, err := m.ScoreRawImageWith(tiny, raw, &nexvitad.ScoreOptions{ROI: c.mask})
		if err != nil {
			t.Fatalf("caller ROI, %s: %v", c.what, err)
		}
		if res.ROISource != nexvitad.ROIFromCaller || bitsHex(res.Score) != exp.CallerROIImageScoreBits || mapSHA256(res.Map) != exp.CallerROIMapSHA256 {
			t.Errorf("caller ROI, %s: source %v, score bits %s, map %s; want caller, %s, %s", c.what,
				res.ROISource, bitsHex(res.Score), mapSHA256(res.Map), exp.CallerROIImageScoreBits, exp.CallerROIMapSHA256)
		}
		alone, err := tiny.ScoreWith(rgbToRGBA(pix, w, h), &nexvitad.ScoreOptions{ROI: c.mask})
		if err != nil || bitsHex(alone.Score) != exp.CallerROIImageScoreBits {
			t.Errorf("caller ROI, %s, bank alone: %v", c.what, err)
		}
	}
	if res, err := m.ScoreRawImage(tiny, raw); err != nil || res.ROISource != nexvitad.ROINone {
		t.Errorf("tiny.bank: %v, ROI source %v, want none", err, res.ROISource)
	}

	// Saved again and loaded back: the ROI and the bits stay.
	path := filepath.Join(t.TempDir(), "roi-copy.bank")
	if err := b.Save(path); err != nil {
		t.Fatal(err)
	}
	again, err := m.LoadBank(path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if r, err := again.ROI(); err != nil || r == nil || !bytes.Equal(r.Data, mask.Data) {
		t.Errorf("saved and loaded: ROI %+v, %v", r, err)
	}
	res, err = again.ScoreRawImage(raw)
	checkROIPlain(t, "saved and loaded", plain, res, err)

	if nexvitad.ROINone.String() != "none" || nexvitad.ROIFromBank.String() != "bank" || nexvitad.ROIFromCaller.String() != "caller" ||
		nexvitad.ROINone != 0 || nexvitad.ROIFromBank != 1 || nexvitad.ROIFromCaller != 2 {
		t.Errorf("ROISource constants %d %d %d", nexvitad.ROINone, nexvitad.ROIFromBank, nexvitad.ROIFromCaller)
	}
}

// TestBuildBankWithROI builds a bank with a ROI from the tiny model: it keeps the mask (as
// 1s) as its default, and map pixels outside are 0.
func TestBuildBankWithROI(t *testing.T) {
	m := openTiny(t)
	pix, w, h := fixtureImage(t)
	good := []image.Image{rgbToRGBA(pix, w, h), texture(1, w, h), texture(2, w, h)}
	// 4 x 3, the right column ignored, given as 255s (and one 7).
	opts := fastBank()
	opts.ROI = &nexvitad.Mask{Data: []byte{255, 255, 255, 0, 255, 255, 255, 0, 7, 255, 255, 0}, Width: 4, Height: 3}
	b, err := m.BuildBank(context.Background(), good, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	info, err := b.Info()
	if err != nil {
		t.Fatal(err)
	}
	if !info.HasROI() || info.ROIWidth != 4 || info.ROIHeight != 3 {
		t.Errorf("info: ROI %dx%d, want 4x3", info.ROIWidth, info.ROIHeight)
	}
	roi, err := b.ROI()
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0}; roi == nil || !bytes.Equal(roi.Data, want) {
		t.Errorf("ROI %+v, want %v", roi, want)
	}
	res, err := m.ScoreRaw(b, pix, w, h, 0, nexvitad.RGB8)
	if err != nil {
		t.Fatal(err)
	}
	if res.ROISource != nexvitad.ROIFromBank {
		t.Errorf("ROI source %v, want bank", res.ROISource)
	}
	if res.Map[w-1] != 0 || res.Map[(h-1)*w+w-1] != 0 || !(res.Map[0] > 0) {
		t.Errorf("map outside the ROI is %v and %v (want 0), inside %v (want > 0)", res.Map[w-1], res.Map[(h-1)*w+w-1], res.Map[0])
	}
	// The bank's own mask given per call: the same map.
	again, err := b.ScoreRawImageWith(nexvitad.RawImage{Pix: pix, Width: w, Height: h, Format: nexvitad.RGB8}, &nexvitad.ScoreOptions{ROI: roi})
	if err != nil {
		t.Fatal(err)
	}
	if again.ROISource != nexvitad.ROIFromCaller || mapSHA256(again.Map) != mapSHA256(res.Map) {
		t.Errorf("the bank's mask per call: source %v, a different map", again.ROISource)
	}
	plain := buildBank(t, m, 2)
	if pi, err := plain.Info(); err != nil || pi.HasROI() {
		t.Errorf("a bank without a ROI: %+v, %v", pi, err)
	}
}

// TestROIErrors: a mask the binding can check (size, stride, buffer) fails before C; one
// that selects nothing is the library's invalid argument, naming options->roi.
func TestROIErrors(t *testing.T) {
	m := openTiny(t)
	b := loadROIBank(t, m)
	pix, w, h := fixtureImage(t)
	raw := nexvitad.RawImage{Pix: pix, Width: w, Height: h, Format: nexvitad.RGB8}
	zeros := &nexvitad.Mask{Data: make([]byte, 24*18), Width: 24, Height: 18}
	for _, c := range []struct {
		what string
		mask *nexvitad.Mask
		msg  string
	}{
		{"all zero", zeros, "options->roi: ROI mask 24x18 is all zero"},
		{"zero width", &nexvitad.Mask{Data: []byte{1}, Width: 0, Height: 1}, "ScoreOptions.ROI: mask size 0x1"},
		{"nil data", &nexvitad.Mask{Width: 2, Height: 2}, "ScoreOptions.ROI: mask data is nil"},
		{"short data", &nexvitad.Mask{Data: []byte{1, 1, 1}, Width: 2, Height: 2}, "mask data holds 3 bytes"},
		{"stride below width", &nexvitad.Mask{Data: []byte{1, 1, 1, 1}, Width: 2, Height: 2, Stride: 1}, "stride 1 is smaller than the mask width 2"},
		{"negative stride", &nexvitad.Mask{Data: []byte{1, 1, 1, 1}, Width: 2, Height: 2, Stride: -2}, "stride -2"},
	} {
		res, err := m.ScoreRawImageWith(b, raw, &nexvitad.ScoreOptions{ROI: c.mask})
		if res != nil {
			t.Errorf("%s: a result came back", c.what)
		}
		wantStatus(t, c.what, err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
		wantMessage(t, c.what, err, c.msg)
	}
	_, err := b.ScoreRawImageWith(raw, &nexvitad.ScoreOptions{ROI: zeros})
	wantStatus(t, "all zero, bank alone", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	wantMessage(t, "all zero, bank alone", err, "options->roi")

	opts := fastBank()
	opts.ROI = zeros
	bank, err := m.BuildBank(context.Background(), []image.Image{texture(1, 64, 48)}, opts)
	if bank != nil {
		t.Error("all-zero build: a bank came back")
	}
	wantStatus(t, "all-zero build", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	wantMessage(t, "all-zero build", err, "options->roi: ROI mask 24x18 is all zero")
	opts.ROI = &nexvitad.Mask{Data: []byte{1, 1}, Width: 2, Height: 2}
	_, err = m.BuildBank(context.Background(), []image.Image{texture(1, 64, 48)}, opts)
	wantStatus(t, "short build mask", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	wantMessage(t, "short build mask", err, "BankOptions.ROI: mask data holds 2 bytes")

	// Nothing was spoiled.
	plain, _ := readExpectedROI(t)
	res, err := b.ScoreRawImage(raw)
	checkROIPlain(t, "after the errors", plain, res, err)

	// A closed bank.
	closed := loadROIBank(t, m)
	closed.Close()
	if _, err := closed.ROI(); !errors.Is(err, nexvitad.ErrClosed) {
		t.Errorf("ROI on a closed bank: %v, want ErrClosed", err)
	}
}

// TestRecalibrated: a new bank at target FPR 0.001, the original unchanged.
func TestRecalibrated(t *testing.T) {
	m := openTiny(t)
	pix, w, h := fixtureImage(t)
	raw := nexvitad.RawImage{Pix: pix, Width: w, Height: h, Format: nexvitad.RGB8}
	for _, c := range []struct {
		what string
		bank *nexvitad.Bank
	}{{"built", buildBank(t, m, 3)}, {"roi.bank", loadROIBank(t, m)}} {
		before, err := c.bank.Info()
		if err != nil {
			t.Fatal(err)
		}
		r0, err := m.ScoreRawImage(c.bank, raw)
		if err != nil {
			t.Fatal(err)
		}
		strict, err := c.bank.Recalibrated(0.001)
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		si, err := strict.Info()
		if err != nil {
			t.Fatal(err)
		}
		if si.TargetFPR != 0.001 || si.ImageThreshold < before.ImageThreshold || si.PixelThreshold < before.PixelThreshold ||
			si.Vectors != before.Vectors || si.ROIWidth != before.ROIWidth {
			t.Errorf("%s: recalibrated info %+v, before %+v: want FPR 0.001, thresholds >= before's, the same vectors and ROI", c.what, si, before)
		}
		r1, err := strict.ScoreRawImage(raw)
		if err != nil {
			t.Fatal(err)
		}
		if bitsHex(r1.Threshold) != bitsHex(si.ImageThreshold) || bitsHex(r1.Score) != bitsHex(r0.Score) ||
			mapSHA256(r1.Map) != mapSHA256(r0.Map) || r1.ROISource != r0.ROISource {
			t.Errorf("%s: the recalibrated bank decides at %v (want %v) with score %v (want %v)", c.what, r1.Threshold, si.ImageThreshold, r1.Score, r0.Score)
		}
		back, err := strict.Recalibrated(before.TargetFPR)
		if err != nil {
			t.Fatal(err)
		}
		if bi, _ := back.Info(); bitsHex(bi.ImageThreshold) != bitsHex(before.ImageThreshold) {
			t.Errorf("%s: back at the bank's own FPR: threshold %v, want %v", c.what, bi.ImageThreshold, before.ImageThreshold)
		}
		back.Close()
		// Closing the new bank leaves the original alone, and the original is unchanged.
		strict.Close()
		after, err := c.bank.Info()
		if err != nil {
			t.Fatal(err)
		}
		if after != before {
			t.Errorf("%s: the original changed: %+v, was %+v", c.what, after, before)
		}
		r2, err := m.ScoreRawImage(c.bank, raw)
		if err != nil || bitsHex(r2.Threshold) != bitsHex(before.ImageThreshold) {
			t.Errorf("%s: the original decides at %v, want %v (%v)", c.what, r2.Threshold, before.ImageThreshold, err)
		}
		for _, bad := range []float32{float32(math.NaN()), 0, 1, -0.5, 2} {
			nb, err := c.bank.Recalibrated(bad)
			if nb != nil {
				t.Errorf("%s: target FPR %v: a bank came back", c.what, bad)
			}
			wantStatus(t, "target FPR", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
			wantMessage(t, "target FPR", err, "must be in (0, 1)")
		}
	}
	// tiny.bank was saved before banks stored their pixel-score tail.
	_, err := loadFixtureBank(t, m).Recalibrated(0.001)
	wantStatus(t, "tiny.bank", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	wantMessage(t, "tiny.bank", err, "pixel-score tail")
	closed := loadROIBank(t, m)
	closed.Close()
	if _, err := closed.Recalibrated(0.01); !errors.Is(err, nexvitad.ErrClosed) {
		t.Errorf("Recalibrated on a closed bank: %v, want ErrClosed", err)
	}
}
