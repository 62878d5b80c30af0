package nexvitad_test

import (
	"image"
	"sync"
	"testing"

	nexvitad "github.com/nexvitad/nexvitad/bindings/go"
)

// TestConcurrentScoring scores from several goroutines at once on one model and bank,
// and checks every result against the serial one to the last bit.
func TestConcurrentScoring(t *testing.T) {
	m := openTiny(t)
	b := loadFixtureBank(t, m)
	pix, w, h := fixtureImage(t)
	imgs := []image.Image{rgbToRGBA(pix, w, h), texture(1, 64, 48), texture(2, 80, 60), texture(3, 40, 40)}
	serial := make([]*nexvitad.Result, len(imgs))
	for i, img := range imgs {
		r, err := m.Score(b, img)
		if err != nil {
			t.Fatal(err)
		}
		serial[i] = r
	}

	const goroutines, rounds = 8, 3
	results := make([][]*nexvitad.Result, goroutines)
	errs := make([]error, goroutines)
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				for k := range imgs {
					i := (g + k) % len(imgs) // goroutines start on different images
					res, err := m.Score(b, imgs[i])
					if err != nil {
						errs[g] = err
						return
					}
					results[g] = append(results[g], res)
				}
			}
		}(g)
	}
	wg.Wait()
	for g := 0; g < goroutines; g++ {
		if errs[g] != nil {
			t.Fatalf("goroutine %d: %v", g, errs[g])
		}
		if len(results[g]) != rounds*len(imgs) {
			t.Fatalf("goroutine %d: %d results", g, len(results[g]))
		}
		for j, res := range results[g] {
			sameResult(t, "concurrent score", serial[(g+j%len(imgs))%len(imgs)], res)
		}
	}
}

// TestCloseWhileScoring closes the model and bank while goroutines score: every call
// either succeeds or reports ErrClosed, and none crashes.
func TestCloseWhileScoring(t *testing.T) {
	m, err := nexvitad.Open(modelDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := loadFixtureBank(t, m)
	img := texture(5, 48, 48)
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, 4*5)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; i < 5; i++ {
				_, err := m.Score(b, img)
				errs <- err
			}
		}()
	}
	close(start)
	if err := m.Close(); err != nil {
		t.Errorf("Close during scoring: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			wantClosed(t, "score racing Close", err)
		}
	}
}
