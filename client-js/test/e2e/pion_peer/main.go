// Command pion_peer is a Pion WebRTC (Go, Debian's golang-github-pion-webrtc.v3-dev) peer for
// the interop tests. It publishes a VP8 IVF file and an Opus Ogg file over WHIP, looping them
// in real time, or plays a room over WHEP and reports what it received as one JSON line.
//
//	pion_peer publish URL -video v.ivf -audio a.ogg -seconds 120
//	pion_peer play URL -seconds 120
//	pion_peer sfu ADDR -static DIR   (a basic fan-out SFU: sfu.go)
//
// Pion sends ICE binding requests only while a path is otherwise idle, so a long run of it
// is the test that media alone keeps a session alive.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v3"
	"github.com/pion/webrtc/v3/pkg/media"
	"github.com/pion/webrtc/v3/pkg/media/ivfreader"
	"github.com/pion/webrtc/v3/pkg/media/oggreader"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: pion_peer publish|play URL [flags], or pion_peer sfu ADDR [-static DIR]")
		os.Exit(2)
	}
	mode, endpoint := os.Args[1], os.Args[2]
	flags := flag.NewFlagSet(mode, flag.ExitOnError)
	video := flags.String("video", "", "VP8 IVF file to publish")
	audio := flags.String("audio", "", "Opus Ogg file to publish")
	seconds := flags.Float64("seconds", 10, "how long to run")
	static := flags.String("static", ".", "sfu: the directory whose lib/ and app/ it serves")
	_ = flags.Parse(os.Args[3:])
	if mode == "sfu" {
		if err := sfu(endpoint, *static); err != nil {
			fmt.Fprintln(os.Stderr, "pion sfu:", err)
			os.Exit(1)
		}
		return
	}
	duration := time.Duration(*seconds * float64(time.Second))
	var report map[string]any
	var err error
	switch mode {
	case "publish":
		report, err = publish(endpoint, *video, *audio, duration)
	case "play":
		report, err = play(endpoint, duration)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pion peer:", err)
		os.Exit(1)
	}
	line, _ := json.Marshal(report)
	fmt.Println(string(line))
}

// negotiate POSTs the complete offer of pc to endpoint and applies the answer; it returns the
// resource URL.
func negotiate(pc *webrtc.PeerConnection, endpoint string) (string, error) {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err = pc.SetLocalDescription(offer); err != nil {
		return "", err
	}
	<-gathered
	response, err := http.Post(endpoint, "application/sdp", bytes.NewBufferString(pc.LocalDescription().SDP))
	if err != nil {
		return "", err
	}
	defer response.Body.Close()
	body, err := io.ReadAll(response.Body)
	if err != nil {
		return "", err
	}
	if response.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("POST %s: %d %s", endpoint, response.StatusCode, body)
	}
	base, _ := url.Parse(endpoint)
	location, err := base.Parse(response.Header.Get("Location"))
	if err != nil {
		return "", err
	}
	err = pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)})
	return location.String(), err
}

func remove(resource string) (int, error) {
	request, err := http.NewRequest(http.MethodDelete, resource, nil)
	if err != nil {
		return 0, err
	}
	response, err := http.DefaultClient.Do(request)
	if err != nil {
		return 0, err
	}
	defer response.Body.Close()
	_, _ = io.Copy(io.Discard, response.Body)
	return response.StatusCode, nil
}

// states records the peer connection's states, so a report says whether it ever failed.
func states(pc *webrtc.PeerConnection) *atomic.Value {
	var last atomic.Value
	last.Store("new")
	failed := false
	pc.OnConnectionStateChange(func(state webrtc.PeerConnectionState) {
		if state == webrtc.PeerConnectionStateFailed || state == webrtc.PeerConnectionStateDisconnected {
			failed = true
		}
		if failed {
			last.Store(state.String() + " (after a failure or disconnect)")
		} else {
			last.Store(state.String())
		}
	})
	return &last
}

func publish(endpoint, videoFile, audioFile string, duration time.Duration) (map[string]any, error) {
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	defer pc.Close()
	state := states(pc)
	videoTrack, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "pion")
	if err != nil {
		return nil, err
	}
	audioTrack, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "audio", "pion")
	if err != nil {
		return nil, err
	}
	for _, track := range []webrtc.TrackLocal{videoTrack, audioTrack} {
		sender, err := pc.AddTrack(track)
		if err != nil {
			return nil, err
		}
		// Read RTCP so that the interceptors (NACK responder, reports) run.
		go func() {
			buf := make([]byte, 1500)
			for {
				if _, _, err := sender.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	resource, err := negotiate(pc, endpoint)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(duration)
	var videoFrames, audioPages atomic.Int64
	errs := make(chan error, 2)
	go func() { errs <- loopVideo(videoFile, videoTrack, deadline, &videoFrames) }()
	go func() { errs <- loopAudio(audioFile, audioTrack, deadline, &audioPages) }()
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			return nil, err
		}
	}
	status, err := remove(resource)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"video_frames_sent": videoFrames.Load(),
		"audio_pages_sent":  audioPages.Load(),
		"connection":        state.Load(),
		"delete_status":     status,
	}, nil
}

func loopVideo(file string, track *webrtc.TrackLocalStaticSample, deadline time.Time, sent *atomic.Int64) error {
	for time.Now().Before(deadline) {
		handle, err := os.Open(file)
		if err != nil {
			return err
		}
		reader, header, err := ivfreader.NewWith(handle)
		if err != nil {
			handle.Close()
			return err
		}
		interval := time.Duration(float64(time.Second) * float64(header.TimebaseNumerator) / float64(header.TimebaseDenominator))
		ticker := time.NewTicker(interval)
		for time.Now().Before(deadline) {
			frame, _, err := reader.ParseNextFrame()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				ticker.Stop()
				handle.Close()
				return err
			}
			<-ticker.C
			if err := track.WriteSample(media.Sample{Data: frame, Duration: interval}); err != nil {
				ticker.Stop()
				handle.Close()
				return err
			}
			sent.Add(1)
		}
		ticker.Stop()
		handle.Close()
	}
	return nil
}

func loopAudio(file string, track *webrtc.TrackLocalStaticSample, deadline time.Time, sent *atomic.Int64) error {
	const pageDuration = 20 * time.Millisecond
	for time.Now().Before(deadline) {
		handle, err := os.Open(file)
		if err != nil {
			return err
		}
		reader, _, err := oggreader.NewWith(handle)
		if err != nil {
			handle.Close()
			return err
		}
		ticker := time.NewTicker(pageDuration)
		var lastGranule uint64
		for time.Now().Before(deadline) {
			page, header, err := reader.ParseNextPage()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				ticker.Stop()
				handle.Close()
				return err
			}
			samples := header.GranulePosition - lastGranule
			lastGranule = header.GranulePosition
			<-ticker.C
			if err := track.WriteSample(media.Sample{Data: page, Duration: time.Duration(samples) * time.Second / 48000}); err != nil {
				ticker.Stop()
				handle.Close()
				return err
			}
			sent.Add(1)
		}
		ticker.Stop()
		handle.Close()
	}
	return nil
}

func play(endpoint string, duration time.Duration) (map[string]any, error) {
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	defer pc.Close()
	state := states(pc)
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return nil, err
		}
	}
	started := time.Now()
	var videoPackets, audioPackets, keyframes, width, height, lastVideoMs atomic.Int64
	pc.OnTrack(func(track *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			packet, _, err := track.ReadRTP()
			if err != nil {
				return
			}
			if track.Kind() == webrtc.RTPCodecTypeAudio {
				audioPackets.Add(1)
				continue
			}
			videoPackets.Add(1)
			lastVideoMs.Store(time.Since(started).Milliseconds())
			if w, h, ok := vp8KeyframeSize(packet.Payload); ok {
				keyframes.Add(1)
				width.Store(int64(w))
				height.Store(int64(h))
			}
		}
	})
	resource, err := negotiate(pc, endpoint)
	if err != nil {
		return nil, err
	}
	time.Sleep(duration)
	status, err := remove(resource)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"video_packets":  videoPackets.Load(),
		"audio_packets":  audioPackets.Load(),
		"keyframes":      keyframes.Load(),
		"width":          width.Load(),
		"height":         height.Load(),
		"last_video_ms":  lastVideoMs.Load(),
		"connection":     state.Load(),
		"delete_status":  status,
		"ran_ms":         time.Since(started).Milliseconds(),
	}, nil
}

// vp8KeyframeSize reads the frame size from the first packet of a VP8 keyframe (RFC 7741:
// the payload descriptor, then the keyframe header with its start code and 14-bit sizes).
func vp8KeyframeSize(payload []byte) (int, int, bool) {
	if len(payload) < 1 {
		return 0, 0, false
	}
	start := payload[0]&0x10 != 0 && payload[0]&0x07 == 0
	offset := 1
	if payload[0]&0x80 != 0 { // X: extension byte follows
		if len(payload) < 2 {
			return 0, 0, false
		}
		ext := payload[1]
		offset = 2
		if ext&0x80 != 0 { // I: PictureID
			if len(payload) <= offset {
				return 0, 0, false
			}
			if payload[offset]&0x80 != 0 {
				offset += 2
			} else {
				offset++
			}
		}
		if ext&0x40 != 0 { // L: TL0PICIDX
			offset++
		}
		if ext&0x30 != 0 { // T or K: TID/KEYIDX byte
			offset++
		}
	}
	frame := payload[offset:]
	if !start || len(frame) < 10 || frame[0]&0x01 != 0 {
		return 0, 0, false
	}
	if frame[3] != 0x9d || frame[4] != 0x01 || frame[5] != 0x2a {
		return 0, 0, false
	}
	w := int(frame[6]) | int(frame[7]&0x3f)<<8
	h := int(frame[8]) | int(frame[9]&0x3f)<<8
	return w, h, true
}
