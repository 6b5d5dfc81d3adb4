package postgresinit

// podrun runs one container of a rendered pod as a local process, the way
// the kubelet would run it: the command and args as rendered, exactly the
// env the pod spec gives it (literal values and secretKeyRef/configMapKeyRef
// resolved from the rendered or test-provided objects, nothing inherited
// from the test process), and every volumeMount materialised as files under
// a temporary root. Mount paths in args, env values and mounted ConfigMap
// content are rewritten to the temporary root, so a spec that names
// /etc/pg-init/passwords/app/password reads <root>/etc/pg-init/passwords/app/password.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

// podObjects are the Secrets and ConfigMaps a pod can reference, by name.
type podObjects struct {
	Secrets    map[string]map[string][]byte
	ConfigMaps map[string]map[string]string
}

// runResult is one finished process.
type runResult struct {
	Code           int
	Stdout, Stderr string
	Args           []string
}

// podRun materialises container c of pod and runs it with binaries mapping
// the container's command[0] base name to a local binary.
func podRun(t *testing.T, pod corev1.PodSpec, c corev1.Container, objs podObjects, binaries map[string]string, timeout time.Duration) runResult {
	t.Helper()
	root := t.TempDir()

	// Longest mount path first, so nested mounts rewrite correctly.
	mounts := append([]corev1.VolumeMount(nil), c.VolumeMounts...)
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].MountPath) > len(mounts[j].MountPath) })
	rewrite := func(s string) string {
		for _, m := range mounts {
			s = strings.ReplaceAll(s, m.MountPath, filepath.Join(root, m.MountPath))
		}
		return s
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		require.True(t, ok, "container %s mounts volume %q that the pod does not define", c.Name, m.Name)
		dir := filepath.Join(root, m.MountPath)
		require.NoError(t, os.MkdirAll(dir, 0o700))
		switch {
		case v.ConfigMap != nil:
			data, ok := objs.ConfigMaps[v.ConfigMap.Name]
			require.True(t, ok, "volume %s: ConfigMap %q not rendered", v.Name, v.ConfigMap.Name)
			for k, val := range data {
				podWrite(t, dir, k, []byte(rewrite(val)))
			}
		case v.Secret != nil:
			podWriteSecret(t, dir, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, objs)
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				switch {
				case src.Secret != nil:
					podWriteSecret(t, dir, src.Secret.Name, src.Secret.Items, src.Secret.Optional, objs)
				case src.ConfigMap != nil:
					data, ok := objs.ConfigMaps[src.ConfigMap.Name]
					require.True(t, ok, "projected ConfigMap %q not rendered", src.ConfigMap.Name)
					for _, it := range src.ConfigMap.Items {
						podWrite(t, dir, it.Path, []byte(rewrite(data[it.Key])))
					}
				default:
					t.Fatalf("volume %s: unsupported projected source", v.Name)
				}
			}
		case v.EmptyDir != nil:
		default:
			t.Fatalf("volume %s: unsupported volume type", v.Name)
		}
	}

	env := []string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+rewrite(e.Value))
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			val, ok := objs.Secrets[ref.Name][ref.Key]
			if !ok {
				if ref.Optional != nil && *ref.Optional {
					continue
				}
				t.Fatalf("env %s: Secret %s key %s does not exist (the kubelet would not start the container)", e.Name, ref.Name, ref.Key)
			}
			env = append(env, e.Name+"="+string(val))
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			val, ok := objs.ConfigMaps[ref.Name][ref.Key]
			require.True(t, ok, "env %s: ConfigMap %s key %s does not exist", e.Name, ref.Name, ref.Key)
			env = append(env, e.Name+"="+val)
		default:
			t.Fatalf("env %s: unsupported valueFrom", e.Name)
		}
	}
	// A process needs a PATH and a HOME; nothing else leaks from the test.
	env = append(env, "PATH=/usr/bin:/bin", "HOME="+root)

	require.NotEmpty(t, c.Command, "container %s: the chart must set command (the image's entrypoint is wait-for-pg)", c.Name)
	bin, ok := binaries[filepath.Base(c.Command[0])]
	require.True(t, ok, "no local binary for %s", c.Command[0])
	args := make([]string, 0, len(c.Command)-1+len(c.Args))
	for _, a := range append(append([]string{}, c.Command[1:]...), c.Args...) {
		args = append(args, rewrite(a))
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "%s did not finish within %s; stderr:\n%s", c.Name, timeout, stderr.String())
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "run %s: %v", bin, err)
		code = ee.ExitCode()
	}
	return runResult{Code: code, Stdout: stdout.String(), Stderr: stderr.String(), Args: args}
}

// podWriteSecret writes a Secret volume's files; as the kubelet does, an
// optional one skips what is missing (the Secret, or a key).
func podWriteSecret(t *testing.T, dir, name string, items []corev1.KeyToPath, optional *bool, objs podObjects) {
	t.Helper()
	opt := optional != nil && *optional
	data, ok := objs.Secrets[name]
	if !ok && opt {
		return
	}
	require.True(t, ok, "Secret %q is neither rendered nor provided", name)
	if len(items) == 0 {
		for k, v := range data {
			podWrite(t, dir, k, v)
		}
		return
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok && opt {
			continue
		}
		require.True(t, ok, "Secret %s has no key %q", name, it.Key)
		podWrite(t, dir, it.Path, v)
	}
}

func podWrite(t *testing.T, dir, rel string, data []byte) {
	t.Helper()
	require.False(t, filepath.IsAbs(rel) || strings.Contains(rel, ".."), "bad volume path %q", rel)
	p := filepath.Join(dir, rel)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
	require.NoError(t, os.WriteFile(p, data, 0o400))
}

// buildBinary builds ./cmd/<name> of the repository into dir.
func buildBinary(t *testing.T, repoRoot, dir, name string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, "./cmd/"+name)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/%s:\n%s", name, b)
	return out
}

func (r runResult) String() string {
	return fmt.Sprintf("exit %d\nargs: %q\nstdout:\n%s\nstderr:\n%s", r.Code, r.Args, r.Stdout, r.Stderr)
}
