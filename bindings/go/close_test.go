package nexvitad_test

import (
	"context"
	"errors"
	"image"
	"path/filepath"
	"testing"

	nexvitad "github.com/nexvitad/nexvitad/bindings/go"
)

func wantClosed(t *testing.T, what string, err error) {
	t.Helper()
	wantStatus(t, what, err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	if !errors.Is(err, nexvitad.ErrClosed) {
		t.Errorf("%s: %v does not wrap ErrClosed", what, err)
	}
}

func TestCloseAndUseAfterClose(t *testing.T) {
	m, err := nexvitad.Open(modelDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.LoadBank(filepath.Join(fixtureDir, "tiny.bank"))
	if err != nil {
		t.Fatal(err)
	}
	img := texture(1, 64, 48)
	want, err := m.Score(b, img)
	if err != nil {
		t.Fatal(err)
	}
	fp := m.Fingerprint()

	// Closing the model first is fine: the bank keeps what it needs.
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if m.Fingerprint() != fp {
		t.Error("fingerprint lost on Close")
	}
	_, err = m.Score(b, img)
	wantClosed(t, "Score on a closed model", err)
	_, err = m.LoadBank(filepath.Join(fixtureDir, "tiny.bank"))
	wantClosed(t, "LoadBank on a closed model", err)
	_, err = m.BuildBank(context.Background(), []image.Image{img}, nil)
	wantClosed(t, "BuildBank on a closed model", err)
	if _, err := b.Info(); err != nil {
		t.Errorf("bank Info after its model closed: %v", err)
	}
	if err := b.Save(filepath.Join(t.TempDir(), "kept.bank")); err != nil {
		t.Errorf("bank Save after its model closed: %v", err)
	}
	// ... and scores alone with its own model (NULL model in C, ABI revision 2).
	if rev := nexvitad.LibraryABIRevision(); rev < 2 {
		t.Fatalf("ABI revision %d < 2", rev)
	}
	alone, err := b.Score(img)
	if err != nil {
		t.Fatalf("bank Score after its model closed: %v", err)
	}
	if alone.Score != want.Score || len(alone.Map) != len(want.Map) || alone.Map[7] != want.Map[7] {
		t.Errorf("bank alone scored %v, the model %v", alone.Score, want.Score)
	}

	if err := b.Close(); err != nil {
		t.Fatalf("bank Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second bank Close: %v", err)
	}
	_, err = b.Info()
	wantClosed(t, "Info on a closed bank", err)
	err = b.Save(filepath.Join(t.TempDir(), "x.bank"))
	wantClosed(t, "Save on a closed bank", err)
	_, err = b.Score(img)
	wantClosed(t, "Score on a closed bank", err)

	live := openTiny(t)
	_, err = live.Score(b, img)
	wantClosed(t, "Score with a closed bank", err)

	// Nil handles are errors too, not crashes.
	var nilModel *nexvitad.Model
	var nilBank *nexvitad.Bank
	if err := nilModel.Close(); err != nil {
		t.Errorf("nil Model Close: %v", err)
	}
	if err := nilBank.Close(); err != nil {
		t.Errorf("nil Bank Close: %v", err)
	}
	_, err = nilModel.Score(b, img)
	wantStatus(t, "Score on a nil model", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	_, err = live.Score(nilBank, img)
	wantStatus(t, "Score with a nil bank", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	_, err = nilBank.Score(img)
	wantStatus(t, "Score on a nil bank", err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
}

func TestOptimizationLevelMirrorsC(t *testing.T) {
	// nil (the zero Options) and OptimizationDefault give the default; OptimizationOff (0) is off.
	for _, o := range []*nexvitad.Options{{}, {OptimizationLevel: nexvitad.Int(nexvitad.OptimizationDefault)},
		{OptimizationLevel: nexvitad.Int(nexvitad.OptimizationOff)}, {OptimizationLevel: nexvitad.Int(nexvitad.OptimizationAll)}} {
		m, err := nexvitad.Open(modelDir, o)
		if err != nil {
			t.Fatalf("Open with %+v: %v", o, err)
		}
		m.Close()
	}
}

func TestBadImages(t *testing.T) {
	m := openTiny(t)
	b := loadFixtureBank(t, m)
	pix, w, h := fixtureImage(t)
	var typedNil *image.RGBA
	cases := []struct {
		name string
		run  func() (*nexvitad.Result, error)
	}{
		{"nil image", func() (*nexvitad.Result, error) { return m.Score(b, nil) }},
		{"typed nil image", func() (*nexvitad.Result, error) { return m.Score(b, typedNil) }},
		{"empty RGBA", func() (*nexvitad.Result, error) { return m.Score(b, image.NewRGBA(image.Rectangle{})) }},
		{"empty sub-image", func() (*nexvitad.Result, error) {
			return m.Score(b, image.NewGray(image.Rect(0, 0, 8, 8)).SubImage(image.Rect(2, 2, 2, 8)))
		}},
		{"nil buffer", func() (*nexvitad.Result, error) { return m.ScoreRaw(b, nil, w, h, 0, nexvitad.RGB8) }},
		{"empty buffer", func() (*nexvitad.Result, error) { return m.ScoreRaw(b, []byte{}, 0, 0, 0, nexvitad.RGB8) }},
		{"short buffer", func() (*nexvitad.Result, error) { return m.ScoreRaw(b, pix[:len(pix)-1], w, h, 0, nexvitad.RGB8) }},
		{"buffer too short for the stride", func() (*nexvitad.Result, error) { return m.ScoreRaw(b, pix, w, h, w*3+1, nexvitad.RGB8) }},
		{"stride below a row", func() (*nexvitad.Result, error) { return m.ScoreRaw(b, pix, w, h, w*3-1, nexvitad.RGB8) }},
		{"negative width", func() (*nexvitad.Result, error) { return m.ScoreRaw(b, pix, -w, h, 0, nexvitad.RGB8) }},
		{"huge height", func() (*nexvitad.Result, error) { return m.ScoreRaw(b, pix, w, 1<<40, 0, nexvitad.RGB8) }},
		{"unknown format", func() (*nexvitad.Result, error) { return m.ScoreRaw(b, pix, w, h, 0, nexvitad.PixelFormat(77)) }},
	}
	for _, c := range cases {
		res, err := c.run()
		if res != nil {
			t.Errorf("%s: got a result", c.name)
		}
		wantStatus(t, c.name, err, nexvitad.StatusInvalidArgument, nexvitad.ErrInvalidArgument)
	}

	// Above the model's configured limits: the library's LIMIT_EXCEEDED.
	small, err := nexvitad.Open(modelDir, &nexvitad.Options{MaxImageSide: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	_, err = small.ScoreRaw(b, pix, w, h, 0, nexvitad.RGB8)
	wantStatus(t, "image above MaxImageSide", err, nexvitad.StatusLimitExceeded, nexvitad.ErrLimitExceeded)
}
