// Package kubernetes holds FlowFleet's example Kubernetes manifests; its test validates them against the
// Kubernetes API types (strict decoding: an unknown or misplaced field fails) and against the flags the
// programs really have.
package kubernetes

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/flowfleet/flowfleet/internal/collector"
)

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

func documents(t *testing.T) map[string][][]byte {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	out := map[string][][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range bytes.Split(data, []byte("\n---\n")) {
			if len(bytes.TrimSpace(doc)) > 0 {
				out[f] = append(out[f], doc)
			}
		}
	}
	return out
}

func TestManifestsMatchTheAPI(t *testing.T) {
	kinds := map[string]int{}
	for file, docs := range documents(t) {
		for _, doc := range docs {
			var tm typeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			kinds[tm.Kind]++
			var obj any
			var pod *corev1.PodTemplateSpec
			var selector map[string]string
			switch tm.Kind {
			case "Deployment":
				d := &appsv1.Deployment{}
				obj, pod = d, &d.Spec.Template
				defer func() { selector = d.Spec.Selector.MatchLabels }()
			case "DaemonSet":
				d := &appsv1.DaemonSet{}
				obj, pod = d, &d.Spec.Template
			case "Service":
				obj = &corev1.Service{}
			case "PersistentVolumeClaim":
				obj = &corev1.PersistentVolumeClaim{}
			case "Namespace":
				obj = &corev1.Namespace{}
			default:
				t.Fatalf("%s: unexpected kind %q", file, tm.Kind)
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Errorf("%s (%s): %v", file, tm.Kind, err)
				continue
			}
			if pod == nil {
				continue
			}
			switch d := obj.(type) {
			case *appsv1.Deployment:
				selector = d.Spec.Selector.MatchLabels
			case *appsv1.DaemonSet:
				selector = d.Spec.Selector.MatchLabels
			}
			for k, v := range selector {
				if pod.Labels[k] != v {
					t.Errorf("%s: selector %s=%s does not match the pod template's labels", file, k, v)
				}
			}
			volumes := map[string]bool{}
			for _, v := range pod.Spec.Volumes {
				volumes[v.Name] = true
			}
			for _, c := range pod.Spec.Containers {
				for _, m := range c.VolumeMounts {
					if !volumes[m.Name] {
						t.Errorf("%s: container %s mounts undeclared volume %s", file, c.Name, m.Name)
					}
				}
				if c.Image == "" {
					t.Errorf("%s: container %s has no image", file, c.Name)
				}
			}
		}
	}
	for _, k := range []string{"Deployment", "DaemonSet", "Service"} {
		if kinds[k] == 0 {
			t.Errorf("no %s manifest", k)
		}
	}
}

// The collector's arguments must be flags the collector has.
func TestCollectorArgsAreRealFlags(t *testing.T) {
	flags := collector.NewCommand().Flags()
	checked := 0
	for file, docs := range documents(t) {
		for _, doc := range docs {
			d := &appsv1.Deployment{}
			if yaml.Unmarshal(doc, d) != nil || d.Kind != "Deployment" {
				continue
			}
			for _, c := range d.Spec.Template.Spec.Containers {
				for _, a := range c.Args {
					name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
					if flags.Lookup(name) == nil {
						t.Errorf("%s: collector has no flag --%s", file, name)
					}
					checked++
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no collector arguments checked")
	}
}

// The collector's probes are plain HTTP on the metrics port (a kubelet cannot present a client
// certificate to the gRPC health service): /healthz for liveness, /readyz for readiness, and the
// metrics listener listens on the pod's addresses.
func TestCollectorProbesUseHTTPHealth(t *testing.T) {
	found := false
	for file, docs := range documents(t) {
		for _, doc := range docs {
			d := &appsv1.Deployment{}
			if yaml.Unmarshal(doc, d) != nil || d.Kind != "Deployment" || d.Name != "flowfleet-collector" {
				continue
			}
			for _, c := range d.Spec.Template.Spec.Containers {
				found = true
				metricsPort := int32(0)
				for _, p := range c.Ports {
					if p.Name == "metrics" {
						metricsPort = p.ContainerPort
					}
				}
				listen := ""
				for _, a := range c.Args {
					if v, ok := strings.CutPrefix(a, "--metrics-listen="); ok {
						listen = v
					}
				}
				host, port, _ := strings.Cut(listen, ":")
				if metricsPort == 0 || port != fmt.Sprint(metricsPort) || (host != "" && host != "0.0.0.0" && host != "[::]") {
					t.Errorf("%s: --metrics-listen=%q is not reachable on the pod's metrics port %d", file, listen, metricsPort)
				}
				for name, pr := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
					if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != name || pr.HTTPGet.Port.String() != "metrics" {
						t.Errorf("%s: container %s: want an httpGet probe of %s on port metrics, have %+v", file, c.Name, name, pr)
					}
				}
			}
		}
	}
	if !found {
		t.Fatal("no collector Deployment")
	}
}
