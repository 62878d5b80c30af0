package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // the accepted upload formats
	"image/png"
	"io"
	"net/http"

	nexvitad "github.com/nexvitad/nexvitad/bindings/go"
)

// limits bound what one request may cost.
type limits struct {
	body    int64 // bytes
	side    int   // image width or height
	workers int   // concurrent scorings
}

type handler struct {
	model *nexvitad.Model
	bank  *nexvitad.Bank
	lim   limits
	slots chan struct{} // one per concurrent scoring: bounds memory under load
}

func newHandler(model *nexvitad.Model, bank *nexvitad.Bank, lim limits) http.Handler {
	h := &handler{model: model, bank: bank, lim: lim, slots: make(chan struct{}, lim.workers)}
	mux := http.NewServeMux()
	mux.HandleFunc("/inspect", h.inspect)
	mux.HandleFunc("/heatmap", h.heatmap)
	mux.HandleFunc("/healthz", h.health)
	return mux
}

// inspection is the JSON answer of /inspect.
type inspection struct {
	Score     float32 `json:"score"`
	Threshold float32 `json:"threshold"`
	Anomalous bool    `json:"anomalous"`
	Width     int     `json:"width"`
	Height    int     `json:"height"`
}

func (h *handler) inspect(w http.ResponseWriter, r *http.Request) {
	_, res, ok := h.score(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, inspection{res.Score, res.Threshold, res.Anomalous, res.Width, res.Height})
}

func (h *handler) heatmap(w http.ResponseWriter, r *http.Request) {
	img, res, ok := h.score(w, r)
	if !ok {
		return
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, overlay(img, res)); err != nil {
		writeError(w, http.StatusInternalServerError, "encoding the heatmap: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("X-Nexvitad-Score", fmt.Sprint(res.Score))
	w.Header().Set("X-Nexvitad-Anomalous", fmt.Sprint(res.Anomalous))
	w.Write(buf.Bytes())
}

func (h *handler) health(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	info, err := h.bank.Info()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status": "ok", "library": nexvitad.Version(), "model": h.model.Fingerprint(),
		"shots": info.Shots, "threshold": info.ImageThreshold,
	})
}

// score reads, checks and decodes the uploaded image and scores it. On failure it has
// already answered the request.
func (h *handler) score(w http.ResponseWriter, r *http.Request) (image.Image, *nexvitad.Result, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "POST a PNG or JPEG image as the request body")
		return nil, nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.lim.body))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body above %d bytes", tooBig.Limit))
		} else {
			writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		}
		return nil, nil, false
	}
	// The header first, so a small file claiming a huge image is refused before decoding.
	cfg, format, err := image.DecodeConfig(bytes.NewReader(body))
	if err != nil {
		writeError(w, http.StatusBadRequest, "the body is not a PNG or JPEG image: "+err.Error())
		return nil, nil, false
	}
	if cfg.Width > h.lim.side || cfg.Height > h.lim.side {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%s image %dx%d above %d px a side", format, cfg.Width, cfg.Height, h.lim.side))
		return nil, nil, false
	}
	img, _, err := image.Decode(bytes.NewReader(body))
	if err != nil {
		writeError(w, http.StatusBadRequest, "decoding the "+format+" image: "+err.Error())
		return nil, nil, false
	}

	select {
	case h.slots <- struct{}{}:
	case <-r.Context().Done():
		return nil, nil, false // the client left
	}
	res, err := h.model.Score(h.bank, img)
	<-h.slots
	if err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, nexvitad.ErrInvalidArgument):
			status = http.StatusBadRequest
		case errors.Is(err, nexvitad.ErrLimitExceeded):
			status = http.StatusRequestEntityTooLarge
		}
		writeError(w, status, err.Error())
		return nil, nil, false
	}
	return img, res, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
