package nexvitad

/*
#include <nexvitad.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"image"
	"image/draw"
	"math"
	"reflect"
	"runtime"
)

// PixelFormat is the layout of raw pixels (8 bits per channel).
type PixelFormat uint32

// The pixel formats of the C API.
const (
	Gray8 PixelFormat = C.NEXVITAD_PIXEL_GRAY8 // one byte per pixel
	RGB8  PixelFormat = C.NEXVITAD_PIXEL_RGB8  // R G B
	BGR8  PixelFormat = C.NEXVITAD_PIXEL_BGR8  // B G R (OpenCV's default)
	RGBA8 PixelFormat = C.NEXVITAD_PIXEL_RGBA8 // R G B A, alpha ignored
	BGRA8 PixelFormat = C.NEXVITAD_PIXEL_BGRA8 // B G R A, alpha ignored
)

// BytesPerPixel returns the size of one pixel, or 0 for an unknown format.
func (f PixelFormat) BytesPerPixel() int {
	switch f {
	case Gray8:
		return 1
	case RGB8, BGR8:
		return 3
	case RGBA8, BGRA8:
		return 4
	}
	return 0
}

func (f PixelFormat) String() string {
	switch f {
	case Gray8:
		return "Gray8"
	case RGB8:
		return "RGB8"
	case BGR8:
		return "BGR8"
	case RGBA8:
		return "RGBA8"
	case BGRA8:
		return "BGRA8"
	}
	return fmt.Sprintf("PixelFormat(%d)", uint32(f))
}

// RawImage is a caller-owned pixel buffer: row y starts at Pix[y*Stride], and Stride 0
// means tightly packed rows (Width * Format.BytesPerPixel()). The library reads it during
// a call only and never keeps it.
type RawImage struct {
	Pix           []byte
	Width, Height int
	Stride        int
	Format        PixelFormat
}

// check validates r against its buffer, which the library cannot see the length of.
func (r *RawImage) check(name string) error {
	bpp := r.Format.BytesPerPixel()
	if bpp == 0 {
		return invalidf(fmt.Sprintf("%s: format %d is not a PixelFormat", name, uint32(r.Format)))
	}
	if r.Width <= 0 || r.Height <= 0 || uint64(r.Width) > math.MaxUint32 || uint64(r.Height) > math.MaxUint32 {
		return invalidf(fmt.Sprintf("%s: size %dx%d must be positive and fit 32 bits (empty image?)", name, r.Width, r.Height))
	}
	row := uint64(r.Width) * uint64(bpp)
	stride := uint64(r.Stride)
	if r.Stride == 0 {
		stride = row
	} else if r.Stride < 0 || stride < row {
		return invalidf(fmt.Sprintf("%s: stride %d is smaller than one row (%d bytes)", name, r.Stride, row))
	}
	hi, lo := mulU64(stride, uint64(r.Height-1))
	need := lo + row
	if hi != 0 || need < lo || need > uint64(len(r.Pix)) {
		if r.Pix == nil {
			return invalidf(fmt.Sprintf("%s: pixel buffer is nil", name))
		}
		return invalidf(fmt.Sprintf("%s: pixel buffer holds %d bytes, a %dx%d %v image with stride %d needs %d",
			name, len(r.Pix), r.Width, r.Height, r.Format, stride, need))
	}
	return nil
}

func mulU64(a, b uint64) (hi, lo uint64) {
	if a != 0 && b > math.MaxUint64/a {
		return 1, 0
	}
	return 0, a * b
}

// toC describes r for the library, pinning its pixels with p so that the C struct,
// which lives in Go memory, may hold the pointer (cgo rules). r must have been checked.
func (r *RawImage) toC(p *runtime.Pinner) C.nexvitad_image {
	p.Pin(&r.Pix[0])
	return C.nexvitad_image{
		data:   (*C.uint8_t)(&r.Pix[0]),
		width:  C.uint32_t(r.Width),
		height: C.uint32_t(r.Height),
		stride: C.size_t(r.Stride),
		format: C.uint32_t(r.Format),
	}
}

// Raw returns img as a RawImage without copying when its memory layout is one the
// library reads directly (*image.RGBA and *image.NRGBA as RGBA8, *image.Gray as Gray8,
// sub-images included, with their stride); any other image (e.g. *image.YCbCr from a
// JPEG) is converted to RGBA first. Alpha is ignored: the stored colour channels are
// used as they are. The result shares memory with img when not converted.
func Raw(img image.Image) (RawImage, error) {
	if isNil(img) {
		return RawImage{}, invalidf("image is nil")
	}
	b := img.Bounds()
	if b.Empty() {
		return RawImage{}, invalidf(fmt.Sprintf("image is empty (%dx%d)", b.Dx(), b.Dy()))
	}
	switch im := img.(type) {
	case *image.RGBA:
		return RawImage{Pix: im.Pix, Width: b.Dx(), Height: b.Dy(), Stride: im.Stride, Format: RGBA8}, nil
	case *image.NRGBA:
		return RawImage{Pix: im.Pix, Width: b.Dx(), Height: b.Dy(), Stride: im.Stride, Format: RGBA8}, nil
	case *image.Gray:
		return RawImage{Pix: im.Pix, Width: b.Dx(), Height: b.Dy(), Stride: im.Stride, Format: Gray8}, nil
	}
	// draw has fast paths for the common sources (YCbCr, Paletted, ...).
	rgba := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(rgba, rgba.Rect, img, b.Min, draw.Src)
	return RawImage{Pix: rgba.Pix, Width: b.Dx(), Height: b.Dy(), Stride: rgba.Stride, Format: RGBA8}, nil
}

// rawImages reads each image as Raw does; an error names the index of the image at fault.
func rawImages(images []image.Image) ([]RawImage, error) {
	raws := make([]RawImage, len(images))
	for i, img := range images {
		r, err := Raw(img)
		var e *Error
		if errors.As(err, &e) {
			e.Message = fmt.Sprintf("images[%d]: %s", i, e.Message)
		}
		if err != nil {
			return nil, err
		}
		raws[i] = r
	}
	return raws, nil
}

// isNil reports a nil interface or a typed nil pointer, whose Bounds would panic.
func isNil(img image.Image) bool {
	if img == nil {
		return true
	}
	v := reflect.ValueOf(img)
	return v.Kind() == reflect.Pointer && v.IsNil()
}
