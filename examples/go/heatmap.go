package main

import (
	"image"
	"image/color"

	nexvitad "github.com/nexvitad/nexvitad/bindings/go"
)

// overlay paints the anomaly map over a grey copy of img. Colours run from blue (0)
// through green to red at twice the bank's pixel threshold, a fixed scale so that a
// good part stays cool instead of being stretched to full range.
func overlay(img image.Image, res *nexvitad.Result) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, res.Width, res.Height))
	top := 2 * res.PixelThreshold
	if top <= 0 {
		top = 1
	}
	for y := 0; y < res.Height; y++ {
		for x := 0; x < res.Width; x++ {
			g := color.GrayModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.Gray).Y
			heat := ramp(res.Map[y*res.Width+x] / top)
			out.SetRGBA(x, y, color.RGBA{
				R: uint8((uint16(g) + uint16(heat.R)) / 2),
				G: uint8((uint16(g) + uint16(heat.G)) / 2),
				B: uint8((uint16(g) + uint16(heat.B)) / 2),
				A: 255,
			})
		}
	}
	return out
}

// ramp maps t in [0, 1] (clamped) to blue, cyan, green, yellow, red.
func ramp(t float32) color.RGBA {
	stops := [...][3]float32{{0, 0, 255}, {0, 255, 255}, {0, 255, 0}, {255, 255, 0}, {255, 0, 0}}
	if !(t > 0) { // also NaN
		t = 0
	}
	if t > 1 {
		t = 1
	}
	pos := t * float32(len(stops)-1)
	i := int(pos)
	if i >= len(stops)-1 {
		i = len(stops) - 2
	}
	f := pos - float32(i)
	var c [3]uint8
	for k := range c {
		c[k] = uint8(stops[i][k] + f*(stops[i+1][k]-stops[i][k]) + 0.5)
	}
	return color.RGBA{c[0], c[1], c[2], 255}
}
