package nexvitad_test

import (
	"context"
	"fmt"
	"image"
	"log"
	"time"

	nexvitad "github.com/nexvitad/nexvitad/bindings/go"
)

func Example() {
	model, err := nexvitad.Open("../../models/tiny", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer model.Close()
	bank, err := model.LoadBank("../../tests/fixtures/crosslang/tiny.bank")
	if err != nil {
		log.Fatal(err)
	}
	defer bank.Close()

	img := image.NewGray(image.Rect(0, 0, 64, 48)) // any image.Image; RGBA and Gray are not copied
	res, err := model.Score(bank, img)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Width, res.Height, len(res.Map), res.Anomalous == (res.Score > res.Threshold))
	// Output: 64 48 3072 true
}

func ExampleModel_BuildBank() {
	model, err := nexvitad.Open("../../models/tiny", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer model.Close()

	good := []image.Image{texture(1, 64, 48), texture(2, 64, 48)} // photos of defect-free parts
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bank, err := model.BuildBank(ctx, good, &nexvitad.BankOptions{K: 8, Seed: 1})
	if err != nil {
		log.Fatal(err) // errors.Is(err, nexvitad.ErrCancelled) after the timeout
	}
	defer bank.Close()
	info, _ := bank.Info()
	fmt.Println(info.Shots, "shots,", info.Vectors, "prototypes")
	// Output: 2 shots, 8 prototypes
}
