// Command cm-sandbox runs cert-manager's controllers, webhook and CA injector as host
// processes of the genai.stack sandbox.
//
// Why this exists: the Go module proxy serves cert-manager's main module
// (github.com/cert-manager/cert-manager, with pkg/ and internal/) but not the modules that
// hold its mains (cmd/controller, cmd/webhook, cmd/cainjector answer 404). This file is the
// sandbox's own small main over the served packages: it starts the controllers a
// self-signed or CA ClusterIssuer needs, the admission webhook (validation and mutation of
// cert-manager's resources) and the CA injector for the webhook configurations. It is not
// cert-manager's command line: flags are the few the sandbox needs.
//
// The module path sits under github.com/cert-manager/cert-manager/ so that Go's internal
// rule lets it use the webhook's configuration types, as cert-manager's own command modules do.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	admissionreg "k8s.io/api/admissionregistration/v1"
	apiext "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	kscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	apireg "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/cert-manager/cert-manager/internal/apis/config/shared"
	webhookconfig "github.com/cert-manager/cert-manager/internal/apis/config/webhook"
	cmwebhook "github.com/cert-manager/cert-manager/internal/webhook"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/util"

	// Controllers register themselves with controllerpkg.Register; issuers with the issuer factory.
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// The controllers a Certificate from a SelfSigned or CA issuer goes through.
var defaultControllers = []string{
	"issuers", "clusterissuers",
	"certificates-trigger", "certificates-key-manager", "certificates-request-manager",
	"certificates-issuing", "certificates-readiness", "certificates-revision-manager",
	"certificaterequests-approver",
	"certificaterequests-issuer-selfsigned", "certificaterequests-issuer-ca",
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: cm-sandbox controller|webhook|cainjector [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	klog.InitFlags(nil)
	ctx = logf.NewContext(ctx, klog.Background())
	var err error
	switch os.Args[1] {
	case "controller":
		err = runController(ctx, os.Args[2:])
	case "webhook":
		err = runWebhook(ctx, os.Args[2:])
	case "cainjector":
		err = runCAInjector(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cm-sandbox:", err)
		os.Exit(1)
	}
}

func runController(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("controller", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig")
	clusterNS := fs.String("cluster-resource-namespace", "cert-manager", "namespace of ClusterIssuers' Secrets")
	controllers := fs.String("controllers", strings.Join(defaultControllers, ","), "controllers to run")
	workers := fs.Int("workers", 2, "workers per controller")
	_ = fs.Parse(args)

	opts := controllerpkg.ContextOptions{
		Kubeconfig:         *kubeconfig,
		KubernetesAPIQPS:   20,
		KubernetesAPIBurst: 50,
		IssuerOptions:      controllerpkg.IssuerOptions{ClusterResourceNamespace: *clusterNS},
		CertificateOptions: controllerpkg.CertificateOptions{
			CertificateRequestMinimumBackoffDuration: time.Second,
			CertificateRequestMaximumBackoffDuration: time.Minute,
		},
	}
	factory, err := controllerpkg.NewContextFactory(ctx, opts)
	if err != nil {
		return err
	}
	known := controllerpkg.Known()
	var run []controllerpkg.Interface
	for _, name := range strings.Split(*controllers, ",") {
		ctor, ok := known[name]
		if !ok {
			return fmt.Errorf("no controller %q in this build", name)
		}
		c, err := ctor(factory)
		if err != nil {
			return fmt.Errorf("controller %s: %w", name, err)
		}
		run = append(run, c)
	}
	// The informers are registered by the constructors; start them, then the workers.
	base, err := factory.Build()
	if err != nil {
		return err
	}
	base.KubeSharedInformerFactory.Start(ctx.Done())
	base.SharedInformerFactory.Start(ctx.Done())
	var wg sync.WaitGroup
	errs := make(chan error, len(run))
	for _, c := range run {
		wg.Add(1)
		go func(c controllerpkg.Interface) {
			defer wg.Done()
			if err := c.Run(*workers, ctx); err != nil {
				errs <- err
			}
		}(c)
	}
	klog.Infof("cm-sandbox controller: %d controllers running", len(run))
	wg.Wait()
	close(errs)
	return <-errs
}

func runWebhook(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("webhook", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig")
	port := fs.Int("secure-port", 10250, "port of the admission endpoints (TLS)")
	healthz := fs.Int("healthz-port", 6080, "port of /healthz and /livez")
	secretNS := fs.String("dynamic-serving-ca-secret-namespace", "cert-manager", "namespace of the serving CA Secret")
	secretName := fs.String("dynamic-serving-ca-secret-name", "cert-manager-webhook-ca", "name of the serving CA Secret")
	dnsNames := fs.String("dynamic-serving-dns-names", "cert-manager-webhook,cert-manager-webhook.cert-manager,cert-manager-webhook.cert-manager.svc", "names on the serving certificate")
	_ = fs.Parse(args)

	opts := webhookconfig.WebhookConfiguration{
		KubeConfig:           *kubeconfig,
		SecurePort:           int32(*port),
		HealthzPort:          int32(*healthz),
		MetricsListenAddress: "0",
		TLSConfig: shared.TLSConfig{
			Dynamic: shared.DynamicServingConfig{
				SecretNamespace: *secretNS,
				SecretName:      *secretName,
				DNSNames:        strings.Split(*dnsNames, ","),
				LeafDuration:    7 * 24 * time.Hour,
			},
		},
	}
	srv, err := cmwebhook.NewCertManagerWebhookServer(klog.Background(), opts)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

func runCAInjector(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("cainjector", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig")
	namespace := fs.String("namespace", "", "namespace to watch (empty: all)")
	_ = fs.Parse(args)

	ctrl.SetLogger(klog.Background())
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	// The injector's server-side apply names its field manager after the user agent.
	cfg = util.RestConfigWithUserAgent(cfg, "cainjector")
	scheme := runtime.NewScheme()
	utilruntime.Must(kscheme.AddToScheme(scheme))
	utilruntime.Must(cmapi.AddToScheme(scheme))
	utilruntime.Must(apiext.AddToScheme(scheme))
	utilruntime.Must(apireg.AddToScheme(scheme))
	utilruntime.Must(admissionreg.AddToScheme(scheme))
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return err
	}
	if err := cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
		Namespace:                    *namespace,
		EnableCertificatesDataSource: true,
		EnabledReconcilersFor: map[string]bool{
			cainjector.MutatingWebhookConfigurationName:   true,
			cainjector.ValidatingWebhookConfigurationName: true,
			cainjector.APIServiceName:                     true,
			cainjector.CustomResourceDefinitionName:       true,
		},
	}); err != nil {
		return err
	}
	return mgr.Start(ctx)
}
