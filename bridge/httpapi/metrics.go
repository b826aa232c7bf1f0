package httpapi

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/roomcast/roomcast/bridge"
)

// metrics exposes the broadcasts in Prometheus' format. Values are read
// from the Manager at scrape time, so there is no second copy of the
// state to keep right. Labels carry ids, never URLs: a URL holds a key.
type metrics struct {
	reg *prometheus.Registry
}

func newMetrics(m *bridge.Manager) *metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(&collector{m: m})
	return &metrics{reg: reg}
}

func (mt *metrics) handler() http.Handler {
	return promhttp.HandlerFor(mt.reg, promhttp.HandlerOpts{})
}

var (
	descBroadcasts = prometheus.NewDesc("roomcast_broadcasts", "Broadcasts this process knows, by state.", []string{"state"}, nil)
	descBytes      = prometheus.NewDesc("roomcast_output_bytes_sent", "FLV bytes sent to a destination.", []string{"broadcast", "room", "output"}, nil)
	descFrames     = prometheus.NewDesc("roomcast_broadcast_video_frames", "Video frames out of the muxer.", []string{"broadcast", "room"}, nil)
	descInfo       = prometheus.NewDesc("roomcast_info", "Build information.", []string{"version"}, nil)
)

type collector struct{ m *bridge.Manager }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descBroadcasts
	ch <- descBytes
	ch <- descFrames
	ch <- descInfo
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, Version)
	states := map[bridge.State]int{}
	for _, s := range []bridge.State{bridge.StateSignalling, bridge.StateConnected, bridge.StateBroadcasting,
		bridge.StateStopping, bridge.StateStopped, bridge.StateFailed} {
		states[s] = 0
	}
	for _, in := range c.m.List() {
		states[in.State]++
		for _, o := range in.Outputs {
			ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(o.Bytes), in.ID, in.Room, o.ID)
		}
		if in.Stats != nil {
			ch <- prometheus.MustNewConstMetric(descFrames, prometheus.CounterValue, float64(in.Stats.VideoFrames), in.ID, in.Room)
		}
	}
	for s, n := range states {
		ch <- prometheus.MustNewConstMetric(descBroadcasts, prometheus.GaugeValue, float64(n), string(s))
	}
}
