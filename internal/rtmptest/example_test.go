package rtmptest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/roomcast/roomcast/internal/rtmptest"
)

// A test starts a receiver, points the code under test at it, and waits for
// what it expects to arrive.
func ExampleReceiver() {
	r, err := rtmptest.NewReceiver()
	if err != nil {
		panic(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	url := r.URL("live", "key") // hand this to the publisher under test
	_ = url

	s, err := r.WaitSession(ctx)
	if err != nil {
		panic(err)
	}
	snap, err := s.Wait(ctx, func(sn *rtmptest.Snapshot) bool {
		return len(sn.DataNamed("onCuePoint")) > 0
	})
	if err != nil {
		panic(err)
	}
	cue := snap.DataNamed("onCuePoint")[0]
	fmt.Println(cue.Timestamp, cue.Values[1].(map[string]any)["name"])
}
