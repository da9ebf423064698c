package operator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	kesoscheme "github.com/keso-os/keso/pkg/generated/clientset/versioned/scheme"
	kesoctl "github.com/keso-os/keso/pkg/generated/controllers/keso.io"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rancher/wrangler/v3/pkg/generated/controllers/batch"
	"github.com/rancher/wrangler/v3/pkg/generated/controllers/core"
	"github.com/rancher/wrangler/v3/pkg/generic"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
)

// Options configure the operator. Tests shorten the durations.
type Options struct {
	Kubeconfig    string        // empty: in-cluster config
	Namespace     string        // namespace of the Lease and the upgrade Jobs
	Image         string        // keso image the upgrade Jobs run
	LeaseName     string        // leader-election Lease
	Identity      string        // this replica's identity (default: hostname)
	LeaseDuration time.Duration // leader election timings
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
	Resync        time.Duration // requeue interval while nodes are in flight
	MetricsAddr   string        // /metrics and /healthz; empty disables
	Workers       int
	QPS           int // API client rate limit
}

// DefaultImage is the floating tag (ociimage.LocalRef) that the operator
// image tarball in every keso root's air-gap folder carries; with
// imagePullPolicy Never each node runs the keso of the OS it booted.
func DefaultImage() string { return "docker.io/keso-os/keso:local" }

// Flags registers the operator's flags on fs.
func Flags(fs *flag.FlagSet) *Options {
	o := &Options{}
	fs.StringVar(&o.Kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file (default: in-cluster)")
	fs.StringVar(&o.Namespace, "namespace", envOr("POD_NAMESPACE", "keso-system"), "namespace of the leader Lease and the upgrade Jobs")
	fs.StringVar(&o.Image, "image", envOr("KESO_IMAGE", DefaultImage()), "keso image the upgrade Jobs run")
	fs.StringVar(&o.LeaseName, "lease", "keso-operator", "leader-election Lease name")
	fs.StringVar(&o.Identity, "identity", envOr("POD_NAME", ""), "leader-election identity (default: hostname)")
	fs.DurationVar(&o.LeaseDuration, "lease-duration", 15*time.Second, "leader-election lease duration")
	fs.DurationVar(&o.RenewDeadline, "renew-deadline", 10*time.Second, "leader-election renew deadline")
	fs.DurationVar(&o.RetryPeriod, "retry-period", 2*time.Second, "leader-election retry period")
	fs.DurationVar(&o.Resync, "resync", 10*time.Second, "recheck interval while nodes are upgrading")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", ":8080", "address for /metrics and /healthz (empty: off)")
	fs.IntVar(&o.Workers, "workers", 2, "worker goroutines per controller")
	fs.IntVar(&o.QPS, "qps", 50, "API requests per second (burst: twice that)")
	return o
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Run runs the operator until ctx ends: it serves metrics, waits to become
// leader (a Lease in opts.Namespace), then runs the controllers. Losing
// leadership ends Run with an error, so the process restarts clean.
func Run(ctx context.Context, o Options) error {
	cfg, err := restConfig(o.Kubeconfig)
	if err != nil {
		return err
	}
	// client-go's default (5 QPS) would pace a 1,000-node rollout.
	cfg.QPS, cfg.Burst = float32(o.QPS), 2*o.QPS
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	if o.Identity == "" {
		if o.Identity, err = os.Hostname(); err != nil {
			return fmt.Errorf("leader identity: %w", err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := NewMetrics(reg)
	if o.MetricsAddr != "" {
		ln, err := net.Listen("tcp", o.MetricsAddr)
		if err != nil {
			return fmt.Errorf("listen on %s for metrics: %w", o.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		log.Printf("keso operator: metrics on http://%s/metrics", ln.Addr())
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, o.Namespace, o.LeaseName,
		kube.CoreV1(), kube.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: o.Identity})
	if err != nil {
		return fmt.Errorf("leader lock: %w", err)
	}
	runErr := make(chan error, 1)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   o.LeaseDuration,
		RenewDeadline:   o.RenewDeadline,
		RetryPeriod:     o.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            o.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				log.Printf("keso operator %s: leading (Lease %s/%s)", o.Identity, o.Namespace, o.LeaseName)
				if err := runControllers(ctx, cfg, kube, metrics, o); err != nil {
					runErr <- err
					cancel()
				}
			},
			OnStoppedLeading: func() { log.Printf("keso operator %s: stopped leading", o.Identity) },
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	le.Run(lctx)
	select {
	case err := <-runErr:
		return err
	default:
	}
	if ctx.Err() == nil {
		return errors.New("lost leadership")
	}
	return nil
}

func runControllers(ctx context.Context, cfg *rest.Config, kube kubernetes.Interface, m *Metrics, o Options) error {
	scf, err := generic.NewFactoryFromConfigWithOptions(cfg, &generic.FactoryOptions{Namespace: o.Namespace})
	if err != nil {
		return fmt.Errorf("controller factory: %w", err)
	}
	shared := &generic.FactoryOptions{SharedControllerFactory: scf.ControllerFactory()}
	kf, err := kesoctl.NewFactoryFromConfigWithOptions(cfg, shared)
	if err != nil {
		return err
	}
	cf, err := core.NewFactoryFromConfigWithOptions(cfg, shared)
	if err != nil {
		return err
	}
	bf, err := batch.NewFactoryFromConfigWithOptions(cfg, shared)
	if err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = kesoscheme.AddToScheme(scheme)
	// Node-level events go to the Node, rollout-level ones to the
	// OSVersion; a wide burst keeps a 1,000-node rollout's events.
	bc := record.NewBroadcaster(record.WithCorrelatorOptions(record.CorrelatorOptions{BurstSize: 2000, QPS: 50}))
	bc.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	defer bc.Shutdown()
	r := &Reconciler{
		OSVersions: kf.Keso().V1().OSVersion(),
		Nodes:      cf.Core().V1().Node(),
		Jobs:       bf.Batch().V1().Job(),
		Kube:       kube,
		Recorder:   bc.NewRecorder(scheme, corev1.EventSource{Component: "keso-operator"}),
		Metrics:    m,
		Job:        JobConfig{Namespace: o.Namespace, Image: o.Image},
		Resync:     o.Resync,
		Now:        time.Now,
		Log:        log.Printf,
	}
	r.Register(ctx)
	if err := scf.Start(ctx, max(o.Workers, 1)); err != nil {
		return fmt.Errorf("start controllers: %w", err)
	}
	<-ctx.Done()
	return nil
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config (or pass --kubeconfig): %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	}
	return cfg, nil
}
