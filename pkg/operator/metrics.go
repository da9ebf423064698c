package operator

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the operator's Prometheus metrics, served on /metrics.
type Metrics struct {
	Nodes    *prometheus.GaugeVec     // keso_operator_nodes{osversion,phase}
	Duration *prometheus.HistogramVec // keso_operator_node_upgrade_duration_seconds{osversion}
	Failures *prometheus.CounterVec   // keso_operator_node_upgrade_failures_total{osversion,reason}
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Nodes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keso_operator_nodes",
			Help: "Selected nodes of each OSVersion by upgrade phase.",
		}, []string{"osversion", "phase"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keso_operator_node_upgrade_duration_seconds",
			Help:    "Time from claiming a node to the node Ready on the new version.",
			Buckets: []float64{1, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600},
		}, []string{"osversion"}),
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keso_operator_node_upgrade_failures_total",
			Help: "Node upgrades that failed, by reason (JobFailed, RolledBack, Timeout, DrainTimeout).",
		}, []string{"osversion", "reason"}),
	}
	reg.MustRegister(m.Nodes, m.Duration, m.Failures)
	return m
}
