// The "sfu" mode: a basic fan-out SFU built on Pion, the peer server the shaped-downlink
// test compares Sluice with. One room: a WHIP publisher (simulcast or not) and any number of
// WHEP viewers; every viewer gets the publisher's audio and its top video layer, as Pion's
// examples forward them, with Pion's default interceptors (NACK, reports, transport-wide
// feedback to the publisher) and a viewer's keyframe requests passed on. There is no
// estimate of a viewer's downlink and no layer choice: that is the behaviour compared.
//
//	pion_peer sfu ADDR -static DIR
//
// It serves DIR's files (the client library and web app pages) beside /whip/ and /whep/.
package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v3"
)

// sfuRoom is the one room: what the publisher sends, and the viewers' tracks.
type sfuRoom struct {
	mu        sync.Mutex
	api       *webrtc.API
	publisher *webrtc.PeerConnection
	// The SSRC of the video layer forwarded (to ask the publisher for keyframes).
	videoSSRC webrtc.SSRC
	// The rid of the layer forwarded: the last of the offer's, or none.
	topRid string
	videos []*webrtc.TrackLocalStaticRTP
	audios []*webrtc.TrackLocalStaticRTP
	serial int
}

func newSfuAPI() (*webrtc.API, error) {
	media := &webrtc.MediaEngine{}
	if err := media.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	for _, uri := range []string{
		"urn:ietf:params:rtp-hdrext:sdes:mid",
		"urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
		"urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
	} {
		if err := media.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uri}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
	}
	registry := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(media, registry); err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(media), webrtc.WithInterceptorRegistry(registry)), nil
}

func sfu(addr, static string) error {
	api, err := newSfuAPI()
	if err != nil {
		return err
	}
	room := &sfuRoom{api: api}
	mux := http.NewServeMux()
	files := http.FileServer(http.Dir(static))
	mux.Handle("/lib/", files)
	mux.Handle("/app/", files)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/whip/", func(w http.ResponseWriter, r *http.Request) { room.serve(w, r, true) })
	mux.HandleFunc("/whep/", func(w http.ResponseWriter, r *http.Request) { room.serve(w, r, false) })
	fmt.Println("pion sfu on", addr)
	return http.ListenAndServe(addr, mux)
}

// serve answers a WHIP (publish) or WHEP (play) offer; other methods on a session are
// accepted and ignored.
func (room *sfuRoom) serve(w http.ResponseWriter, r *http.Request, publish bool) {
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	offer, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var answer string
	if publish {
		answer, err = room.publish(string(offer))
	} else {
		answer, err = room.play(string(offer))
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	room.mu.Lock()
	room.serial++
	location := fmt.Sprintf("%s/session-%d", strings.TrimSuffix(r.URL.Path, "/"), room.serial)
	room.mu.Unlock()
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", location)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

// answer applies offer to pc and returns its complete answer.
func answer(pc *webrtc.PeerConnection, offer string) (string, error) {
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", err
	}
	local, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err = pc.SetLocalDescription(local); err != nil {
		return "", err
	}
	<-gathered
	return pc.LocalDescription().SDP, nil
}

func (room *sfuRoom) publish(offer string) (string, error) {
	pc, err := room.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return "", err
	}
	// The offer's last rid is its top layer (whip.js sends q, h, f).
	top := ""
	for _, line := range strings.Split(offer, "\n") {
		if rid := strings.TrimSpace(line); strings.HasPrefix(rid, "a=rid:") {
			top = strings.Fields(strings.TrimPrefix(rid, "a=rid:"))[0]
		}
	}
	room.mu.Lock()
	room.publisher = pc
	room.topRid = top
	room.mu.Unlock()
	pc.OnTrack(func(track *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
		go func() {
			// Read the track's RTCP so that the interceptors run (a rid layer's own: the
			// receiver's first track may not be set up yet).
			buf := make([]byte, 1500)
			rid := track.RID()
			for {
				var err error
				if rid != "" {
					_, _, err = receiver.ReadSimulcast(buf, rid)
				} else {
					_, _, err = receiver.Read(buf)
				}
				if err != nil {
					return
				}
			}
		}()
		video := track.Kind() == webrtc.RTPCodecTypeVideo
		if video && track.RID() != top {
			// Another layer: read and drop it.
			go func() {
				for {
					if _, _, err := track.ReadRTP(); err != nil {
						return
					}
				}
			}()
			return
		}
		if video {
			room.mu.Lock()
			room.videoSSRC = track.SSRC()
			room.mu.Unlock()
		}
		go room.forward(track, video)
	})
	return answer(pc, offer)
}

// forward writes every packet of track to every viewer's track of its kind.
func (room *sfuRoom) forward(track *webrtc.TrackRemote, video bool) {
	for {
		packet, _, err := track.ReadRTP()
		if err != nil {
			return
		}
		room.mu.Lock()
		locals := room.audios
		if video {
			locals = room.videos
		}
		room.mu.Unlock()
		for _, local := range locals {
			_ = local.WriteRTP(packet)
		}
	}
}

// keyframe asks the publisher for a keyframe of the forwarded layer.
func (room *sfuRoom) keyframe() {
	room.mu.Lock()
	pc, ssrc := room.publisher, room.videoSSRC
	room.mu.Unlock()
	if pc != nil && ssrc != 0 {
		_ = pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(ssrc)}})
	}
}

func (room *sfuRoom) play(offer string) (string, error) {
	pc, err := room.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return "", err
	}
	video, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "pion")
	if err != nil {
		return "", err
	}
	audio, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "audio", "pion")
	if err != nil {
		return "", err
	}
	for _, local := range []*webrtc.TrackLocalStaticRTP{audio, video} {
		sender, err := pc.AddTrack(local)
		if err != nil {
			return "", err
		}
		go func() {
			for {
				packets, _, err := sender.ReadRTCP()
				if err != nil {
					return
				}
				for _, packet := range packets {
					switch packet.(type) {
					case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
						room.keyframe()
					}
				}
			}
		}()
	}
	pc.OnConnectionStateChange(func(state webrtc.PeerConnectionState) {
		if state == webrtc.PeerConnectionStateConnected {
			room.mu.Lock()
			room.videos = append(room.videos, video)
			room.audios = append(room.audios, audio)
			room.mu.Unlock()
			time.AfterFunc(100*time.Millisecond, room.keyframe)
		}
	})
	return answer(pc, offer)
}
