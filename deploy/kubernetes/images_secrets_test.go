package kubernetes

import (
	"net"
	"path"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/flowfleet/flowfleet/internal/sensor"
)

// workloads returns the pod templates of the Deployments and DaemonSets, by kind.
func workloads(t *testing.T) map[string]*corev1.PodTemplateSpec {
	t.Helper()
	out := map[string]*corev1.PodTemplateSpec{}
	for file, docs := range documents(t) {
		for _, doc := range docs {
			var tm typeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			switch tm.Kind {
			case "Deployment":
				d := &appsv1.Deployment{}
				if err := yaml.Unmarshal(doc, d); err != nil {
					t.Fatal(err)
				}
				out["Deployment"] = &d.Spec.Template
			case "DaemonSet":
				d := &appsv1.DaemonSet{}
				if err := yaml.Unmarshal(doc, d); err != nil {
					t.Fatal(err)
				}
				out["DaemonSet"] = &d.Spec.Template
			}
		}
	}
	if out["Deployment"] == nil || out["DaemonSet"] == nil {
		t.Fatalf("want the collector Deployment and the sensor DaemonSet, got %v", out)
	}
	return out
}

func arg(c corev1.Container, name string) (string, bool) {
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// The workloads run scripts/image.sh's images (name flowfleet/<program>, tag VERSION to be replaced) and
// read their certificates from Secrets in cert-manager's layout: tls.crt, tls.key and ca.crt.
func TestImagesAndSecretLayout(t *testing.T) {
	for kind, pod := range workloads(t) {
		prog := map[string]string{"Deployment": "collector", "DaemonSet": "sensor"}[kind]
		if len(pod.Spec.Containers) != 1 {
			t.Fatalf("%s: want one container, got %d", kind, len(pod.Spec.Containers))
		}
		c := pod.Spec.Containers[0]
		if want := "flowfleet/" + prog + ":VERSION"; c.Image != want {
			t.Errorf("%s: image %q, want %q (scripts/image.sh's name and tag)", kind, c.Image, want)
		}
		volumes := map[string]corev1.Volume{}
		for _, v := range pod.Spec.Volumes {
			volumes[v.Name] = v
		}
		for flag, file := range map[string]string{"cert": "tls.crt", "key": "tls.key", "ca": "ca.crt"} {
			p, ok := arg(c, flag)
			if !ok {
				t.Errorf("%s: no --%s", kind, flag)
				continue
			}
			if path.Base(p) != file {
				t.Errorf("%s: --%s=%s, want a file named %s", kind, flag, p, file)
			}
			var mount *corev1.VolumeMount
			for i, m := range c.VolumeMounts {
				if path.Dir(p) == path.Clean(m.MountPath) {
					mount = &c.VolumeMounts[i]
				}
			}
			if mount == nil {
				t.Errorf("%s: --%s=%s is not in a mounted volume", kind, flag, p)
				continue
			}
			v := volumes[mount.Name]
			if v.Secret == nil || v.Secret.SecretName == "" || !mount.ReadOnly {
				t.Errorf("%s: --%s comes from volume %s, want a read-only Secret volume", kind, flag, mount.Name)
			}
		}
	}
}

// The sensor: probes on the metrics listener's /healthz, AF_PACKET capture (the image has no libpcap), no
// unused NODE_NAME, and only flags the sensor has.
func TestSensorDaemonSet(t *testing.T) {
	c := workloads(t)["DaemonSet"].Spec.Containers[0]
	flags := sensor.NewCommand(nil).Flags()
	for _, a := range c.Args {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if flags.Lookup(name) == nil {
			t.Errorf("sensor has no flag --%s", name)
		}
	}
	if v, _ := arg(c, "capture"); v != "afpacket" {
		t.Errorf("--capture=%q, want afpacket (the image's sensor is built without libpcap)", v)
	}
	for _, e := range c.Env {
		if e.Name == "NODE_NAME" {
			t.Error("NODE_NAME is set but the sensor does not read it")
		}
	}
	listen, ok := arg(c, "metrics-listen")
	if !ok {
		t.Fatal("no --metrics-listen: the probes need the metrics listener")
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe: want an httpGet probe, got %+v", name, p)
			continue
		}
		if p.HTTPGet.Path != "/healthz" {
			t.Errorf("%s probe path %q, want /healthz", name, p.HTTPGet.Path)
		}
		got := p.HTTPGet.Port.String()
		for _, cp := range c.Ports {
			if cp.Name == got {
				got = strconv.Itoa(int(cp.ContainerPort))
			}
		}
		if got != port {
			t.Errorf("%s probe port %s, want the metrics port %s", name, got, port)
		}
	}
}
