package main

// Running one container of a rendered pod as a local process, the way the
// kubelet would: the rendered command and args, exactly the env the pod spec
// gives it (literal values, secretKeyRef/configMapKeyRef resolved from the
// rendered objects and the tenant Secret, fieldRef metadata.name as the pod
// name; nothing inherited but PATH and HOME), and every ConfigMap, Secret and
// projected volume it mounts written as files under a private root. Mount
// paths in args, env values and mounted ConfigMap content are rewritten to
// that root (pg-init's spec names the mounted password files).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

type containerResult struct {
	args   []string
	stdout []byte
}

func (d *dataPathRun) configMap(name string) (map[string]string, error) {
	o, ok := d.m.Get("ConfigMap", d.pl.Namespace, name)
	if !ok {
		return nil, fmt.Errorf("ConfigMap %s is not rendered", name)
	}
	var cm corev1.ConfigMap
	if err := o.DecodeInto(&cm); err != nil {
		return nil, err
	}
	return cm.Data, nil
}

func (d *dataPathRun) secret(name string) (map[string]string, error) {
	s, ok := d.secrets[name]
	if !ok {
		return nil, fmt.Errorf("Secret %s is neither rendered by the chart nor the tenant Secret commons renders", name)
	}
	return s, nil
}

// env resolves container c's environment for pod podName; mount paths are
// rewritten to root when root is not empty.
func (d *dataPathRun) env(c corev1.Container, podName string, rewrite func(string) string) ([]string, error) {
	if rewrite == nil {
		rewrite = func(s string) string { return s }
	}
	out := []string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			out = append(out, e.Name+"="+rewrite(e.Value))
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			data, err := d.secret(ref.Name)
			if err != nil {
				return nil, fmt.Errorf("env %s of %s: %w", e.Name, c.Name, err)
			}
			v, ok := data[ref.Key]
			if !ok {
				if ref.Optional != nil && *ref.Optional {
					continue
				}
				return nil, fmt.Errorf("env %s of %s: Secret %s has no key %q (the kubelet would not start the container)", e.Name, c.Name, ref.Name, ref.Key)
			}
			out = append(out, e.Name+"="+rewrite(v)) // e.g. PGSSLROOTCERT, a file of a mounted volume
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			data, err := d.configMap(ref.Name)
			if err != nil {
				return nil, fmt.Errorf("env %s of %s: %w", e.Name, c.Name, err)
			}
			v, ok := data[ref.Key]
			if !ok {
				return nil, fmt.Errorf("env %s of %s: ConfigMap %s has no key %q", e.Name, c.Name, ref.Name, ref.Key)
			}
			out = append(out, e.Name+"="+v)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			out = append(out, e.Name+"="+podName)
		default:
			return nil, fmt.Errorf("env %s of %s: unsupported valueFrom", e.Name, c.Name)
		}
	}
	return append(out, "PATH=/usr/bin:/bin"), nil
}

// volumeFiles returns the files container c sees under its ConfigMap,
// Secret and projected mounts, keyed by absolute path in the container.
func (d *dataPathRun) volumeFiles(pod *corev1.PodSpec, c corev1.Container) (map[string]string, map[string]bool, error) {
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	files := map[string]string{}
	isConfig := map[string]bool{}
	add := func(mount, kind, name string, items []corev1.KeyToPath, data map[string]string, optional *bool) error {
		if len(items) == 0 {
			for k := range data {
				items = append(items, corev1.KeyToPath{Key: k, Path: k})
			}
		}
		for _, it := range items {
			v, ok := data[it.Key]
			if !ok && optional != nil && *optional {
				continue // the kubelet skips a missing key of an optional volume
			}
			if !ok {
				return fmt.Errorf("%s %s has no key %q", kind, name, it.Key)
			}
			if filepath.IsAbs(it.Path) || strings.Contains(it.Path, "..") {
				return fmt.Errorf("%s %s: bad item path %q", kind, name, it.Path)
			}
			p := filepath.Join(mount, it.Path)
			files[p] = v
			isConfig[p] = kind == "ConfigMap"
		}
		return nil
	}
	for _, vm := range c.VolumeMounts {
		v, ok := volumes[vm.Name]
		if !ok {
			return nil, nil, fmt.Errorf("container %s mounts volume %q that the pod does not define", c.Name, vm.Name)
		}
		var err error
		switch {
		case v.ConfigMap != nil:
			var data map[string]string
			if data, err = d.configMap(v.ConfigMap.Name); err == nil {
				err = add(vm.MountPath, "ConfigMap", v.ConfigMap.Name, v.ConfigMap.Items, data, v.ConfigMap.Optional)
			}
		case v.Secret != nil:
			var data map[string]string
			if data, err = d.secret(v.Secret.SecretName); err == nil {
				err = add(vm.MountPath, "Secret", v.Secret.SecretName, v.Secret.Items, data, v.Secret.Optional)
			}
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				var data map[string]string
				switch {
				case src.Secret != nil:
					if data, err = d.secret(src.Secret.Name); err == nil {
						err = add(vm.MountPath, "Secret", src.Secret.Name, src.Secret.Items, data, src.Secret.Optional)
					}
				case src.ConfigMap != nil:
					if data, err = d.configMap(src.ConfigMap.Name); err == nil {
						err = add(vm.MountPath, "ConfigMap", src.ConfigMap.Name, src.ConfigMap.Items, data, src.ConfigMap.Optional)
					}
				default:
					err = fmt.Errorf("volume %s: unsupported projected source", v.Name)
				}
				if err != nil {
					break
				}
			}
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return files, isConfig, nil
}

// materialize writes the files of container c's ConfigMap, Secret and
// projected mounts under root and returns the rewrite of mount paths to it.
func (d *dataPathRun) materialize(pod *corev1.PodSpec, c corev1.Container, root string) (func(string) string, error) {
	mounts := make([]string, 0, len(c.VolumeMounts))
	for _, vm := range c.VolumeMounts {
		mounts = append(mounts, vm.MountPath)
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	// One pass, longest mount first: a rewritten path is not rewritten again
	// under a shorter mount (/tmp).
	pairs := make([]string, 0, 2*len(mounts))
	for _, m := range mounts {
		pairs = append(pairs, m+"/", filepath.Join(root, m)+"/")
	}
	rewrite := strings.NewReplacer(pairs...).Replace
	files, isConfig, err := d.volumeFiles(pod, c)
	if err != nil {
		return nil, err
	}
	for p, v := range files {
		if isConfig[p] {
			v = rewrite(v)
		}
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(full, []byte(v), 0o400); err != nil {
			return nil, err
		}
	}
	return rewrite, nil
}

// mountedFile returns the content of a file the container sees at path.
func (d *dataPathRun) mountedFile(pod *corev1.PodSpec, c corev1.Container, path string) (string, error) {
	files, _, err := d.volumeFiles(pod, c)
	if err != nil {
		return "", err
	}
	v, ok := files[path]
	if !ok {
		return "", fmt.Errorf("container %s: no volume provides %s", c.Name, path)
	}
	return v, nil
}

// runContainer runs container c of pod with the local binary of that name
// and returns its stdout; a non-zero exit is an error with its stderr.
func (d *dataPathRun) runContainer(ctx context.Context, pod *corev1.PodSpec, c corev1.Container, binary, podName string, timeout time.Duration) (*containerResult, error) {
	if len(c.Command) == 0 || filepath.Base(c.Command[0]) != binary {
		return nil, fmt.Errorf("container %s: command %q, want %s", c.Name, c.Command, binary)
	}
	root, err := os.MkdirTemp(d.pl.Dir, c.Name+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	rewrite, err := d.materialize(pod, c, root)
	if err != nil {
		return nil, err
	}
	env, err := d.env(c, podName, rewrite)
	if err != nil {
		return nil, err
	}
	env = append(env, "HOME="+root)
	var args []string
	for _, a := range append(append([]string{}, c.Command[1:]...), c.Args...) {
		args = append(args, rewrite(a))
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, filepath.Join(d.pl.BinDir, binary), args...)
	cmd.Env, cmd.Dir = env, root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(cctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%s did not finish within %s; stderr:\n%s", binary, timeout, lastLines(stderr.String(), 10))
		}
		return nil, fmt.Errorf("%s %s: %w; stderr:\n%s", binary, strings.Join(c.Args, " "), err, lastLines(stderr.String(), 10))
	}
	return &containerResult{args: append([]string{binary}, c.Args...), stdout: stdout.Bytes()}, nil
}
