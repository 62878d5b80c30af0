package nexvitad_test

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"strconv"
	"testing"

	nexvitad "github.com/nexvitad/nexvitad/bindings/go"
)

func TestVersion(t *testing.T) {
	if nexvitad.Version() == "" {
		t.Error("Version() is empty")
	}
	if got := nexvitad.LibraryABIVersion(); got != nexvitad.ABIVersion {
		t.Errorf("library ABI %d, package ABI %d", got, nexvitad.ABIVersion)
	}
	if got := nexvitad.StatusMismatch.String(); got != "NEXVITAD_MISMATCH" {
		t.Errorf("StatusMismatch.String() = %q", got)
	}
}

// TestCrossLanguageFixture scores the shared fixture image and checks the Rust API's
// result to the last bit.
func TestCrossLanguageFixture(t *testing.T) {
	exp := readExpected(t)
	m := openTiny(t)
	b := loadFixtureBank(t, m)
	pix, w, h := fixtureImage(t)
	res, err := m.ScoreRaw(b, pix, w, h, 0, nexvitad.RGB8)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%08x", math.Float32bits(res.Score)); got != exp.ImageScoreBits {
		t.Errorf("image_score bits %s (%v), want %s", got, res.Score, exp.ImageScoreBits)
	}
	if got := fmt.Sprintf("%08x", math.Float32bits(res.Threshold)); got != exp.ImageThresholdBits {
		t.Errorf("image_threshold bits %s, want %s", got, exp.ImageThresholdBits)
	}
	if res.Anomalous != exp.IsAnomalous {
		t.Errorf("anomalous %v, want %v", res.Anomalous, exp.IsAnomalous)
	}
	if res.Width != w || res.Height != h || len(res.Map) != exp.MapLen {
		t.Errorf("map %dx%d (%d values), want %dx%d (%d)", res.Width, res.Height, len(res.Map), w, h, exp.MapLen)
	}
	if got := mapSHA256(res.Map); got != exp.MapSHA256 {
		t.Errorf("map sha256 %s, want %s", got, exp.MapSHA256)
	}
	// The same pixels as an image.Image take the no-copy RGBA path and must agree.
	viaImage, err := m.Score(b, rgbToRGBA(pix, w, h))
	if err != nil {
		t.Fatal(err)
	}
	sameResult(t, "image.RGBA vs raw RGB8", res, viaImage)
}

// TestImageLayouts checks that every way of handing over the same pixels scores the
// same: packed and strided buffers, channel orders, Go image types and sub-images.
func TestImageLayouts(t *testing.T) {
	m := openTiny(t)
	b := loadFixtureBank(t, m)
	pix, w, h := fixtureImage(t)
	ref, err := m.ScoreRaw(b, pix, w, h, 0, nexvitad.RGB8)
	if err != nil {
		t.Fatal(err)
	}

	// BGR8 with padded rows.
	stride := w*3 + 13
	bgr := make([]byte, stride*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			s, d := 3*(y*w+x), y*stride+3*x
			bgr[d], bgr[d+1], bgr[d+2] = pix[s+2], pix[s+1], pix[s]
		}
	}
	got, err := m.ScoreRaw(b, bgr, w, h, stride, nexvitad.BGR8)
	if err != nil {
		t.Fatal(err)
	}
	sameResult(t, "BGR8 strided", ref, got)

	// *image.NRGBA.
	rgba := rgbToRGBA(pix, w, h)
	nrgba := &image.NRGBA{Pix: rgba.Pix, Stride: rgba.Stride, Rect: rgba.Rect}
	if got, err = m.Score(b, nrgba); err != nil {
		t.Fatal(err)
	}
	sameResult(t, "image.NRGBA", ref, got)

	// A sub-image: its rows are the parent's stride apart, not packed.
	big := image.NewRGBA(image.Rect(0, 0, w+20, h+10))
	draw.Draw(big, image.Rect(7, 5, 7+w, 5+h), rgba, image.Point{}, draw.Src)
	sub := big.SubImage(image.Rect(7, 5, 7+w, 5+h))
	if got, err = m.Score(b, sub); err != nil {
		t.Fatal(err)
	}
	sameResult(t, "image.RGBA sub-image", ref, got)

	// Other image types are converted: a YCbCr (what JPEG decodes to) scores as its
	// RGBA conversion.
	ycc := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio444)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := rgba.RGBAAt(x, y)
			yy, cb, cr := color.RGBToYCbCr(c.R, c.G, c.B)
			ycc.Y[ycc.YOffset(x, y)], ycc.Cb[ycc.COffset(x, y)], ycc.Cr[ycc.COffset(x, y)] = yy, cb, cr
		}
	}
	conv := image.NewRGBA(ycc.Rect)
	draw.Draw(conv, conv.Rect, ycc, image.Point{}, draw.Src)
	wantYCC, err := m.Score(b, conv)
	if err != nil {
		t.Fatal(err)
	}
	if got, err = m.Score(b, ycc); err != nil {
		t.Fatal(err)
	}
	sameResult(t, "image.YCbCr", wantYCC, got)

	// *image.Gray (no copy, Gray8) vs the same bytes as a raw Gray8 buffer, sub-image too.
	gray := image.NewGray(image.Rect(0, 0, w+4, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			gray.Pix[y*gray.Stride+x+4] = pix[3*(y*w+x)+1]
		}
	}
	packed := make([]byte, w*h)
	for y := 0; y < h; y++ {
		copy(packed[y*w:(y+1)*w], gray.Pix[y*gray.Stride+4:y*gray.Stride+4+w])
	}
	wantGray, err := m.ScoreRaw(b, packed, w, h, 0, nexvitad.Gray8)
	if err != nil {
		t.Fatal(err)
	}
	if got, err = m.Score(b, gray.SubImage(image.Rect(4, 0, w+4, h))); err != nil {
		t.Fatal(err)
	}
	sameResult(t, "image.Gray sub-image", wantGray, got)
}

func TestScoreBatchMatchesSingle(t *testing.T) {
	m := openTiny(t)
	b := loadFixtureBank(t, m)
	imgs := []image.Image{texture(1, 64, 48), texture(2, 80, 40), texture(3, 32, 32)}
	batch, err := m.ScoreBatch(b, imgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(batch) != len(imgs) {
		t.Fatalf("%d results for %d images", len(batch), len(imgs))
	}
	for i, img := range imgs {
		one, err := m.Score(b, img)
		if err != nil {
			t.Fatal(err)
		}
		sameResult(t, "batch image "+strconv.Itoa(i), one, batch[i])
	}
	_, err = m.ScoreBatch(b, []image.Image{imgs[0], nil})
	wantStatus(t, "batch with a nil image", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	_, err = m.ScoreBatch(b, nil)
	wantStatus(t, "empty batch", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
}
