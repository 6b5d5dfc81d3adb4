package testcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SchemaDir is where kubeconform schemas generated from this cluster's
// /openapi/v2 are cached (keyed by the Kubernetes version). Pass it as
// `kubeconform -schema-location DIR -kubernetes-version V`.
func (t *Tools) SchemaDir() string {
	return filepath.Join(t.Cache, "schemas-"+t.Versions["KUBE_VERSION"])
}

// EnsureSchemas generates the kubeconform schemas from the live apiserver
// unless they are already cached.
func (c *Cluster) EnsureSchemas(ctx context.Context) (string, error) {
	dir := c.Tools.SchemaDir()
	if _, err := os.Stat(filepath.Join(dir, ".done")); err == nil {
		return dir, nil
	}
	swagger, err := c.client.Discovery().RESTClient().Get().AbsPath("/openapi/v2").
		SetHeader("Accept", "application/json").DoRaw(ctx)
	if err != nil {
		return "", fmt.Errorf("testcluster: GET /openapi/v2: %w", err)
	}
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := WriteKubeconformSchemas(swagger, tmp, c.Tools.Versions["KUBE_VERSION"]); err != nil {
		return "", err
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, ".done"), nil, 0o644)
}

type jsonObj = map[string]any

// WriteKubeconformSchemas converts an apiserver's OpenAPI v2 document into
// kubeconform's local schema layout under dir: v<version>-standalone/ and
// v<version>-standalone-strict/ (additionalProperties false everywhere),
// each with <kind>-<group>-<version>.json files referring to one
// _definitions.json. It applies the usual openapi2jsonschema adjustments:
// int-or-string, optional fields may be null, quantities may be numbers.
func WriteKubeconformSchemas(swagger []byte, dir, kubeVersion string) error {
	for _, strict := range []bool{false, true} {
		var doc jsonObj
		if err := json.Unmarshal(swagger, &doc); err != nil {
			return fmt.Errorf("testcluster: openapi: %w", err)
		}
		defs, _ := doc["definitions"].(jsonObj)
		sub := filepath.Join(dir, "v"+kubeVersion+"-standalone")
		if strict {
			sub += "-strict"
		}
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		converted := jsonObj{}
		for name, d := range defs {
			c := fixSchema(d, strict)
			if name == "io.k8s.apimachinery.pkg.api.resource.Quantity" {
				c = jsonObj{"oneOf": []any{jsonObj{"type": "string"}, jsonObj{"type": "number"}}}
			}
			if cm, ok := c.(jsonObj); ok {
				if ty, ok := cm["type"].(string); ok && ty != "object" {
					cm["type"] = []any{ty, "null"}
				}
			}
			converted[name] = c
		}
		if err := writeJSON(filepath.Join(sub, "_definitions.json"), jsonObj{"definitions": converted}); err != nil {
			return err
		}
		for name, d := range defs {
			gvks, _ := d.(jsonObj)["x-kubernetes-group-version-kind"].([]any)
			for _, g := range gvks {
				gvk, _ := g.(jsonObj)
				group, _ := gvk["group"].(string)
				version, _ := gvk["version"].(string)
				kind, _ := gvk["kind"].(string)
				suffix := "-" + strings.ToLower(version)
				if group != "" {
					suffix = "-" + strings.ToLower(strings.Split(group, ".")[0]) + suffix
				}
				if err := writeJSON(filepath.Join(sub, strings.ToLower(kind)+suffix+".json"),
					jsonObj{"$ref": "_definitions.json#/definitions/" + name}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func fixSchema(v any, strict bool) any {
	switch t := v.(type) {
	case []any:
		for i := range t {
			t[i] = fixSchema(t[i], strict)
		}
		return t
	case jsonObj:
		if f, _ := t["format"].(string); f == "int-or-string" {
			delete(t, "type")
			delete(t, "format")
			t["oneOf"] = []any{jsonObj{"type": "string"}, jsonObj{"type": "integer"}}
		}
		required := map[string]bool{}
		if rq, ok := t["required"].([]any); ok {
			for _, r := range rq {
				if s, ok := r.(string); ok {
					required[s] = true
				}
			}
		}
		for k, val := range t {
			switch {
			case k == "properties":
				props, _ := val.(jsonObj)
				for pn, pv := range props {
					p := fixSchema(pv, strict)
					if pm, ok := p.(jsonObj); ok && !required[pn] {
						if ty, ok := pm["type"].(string); ok {
							pm["type"] = []any{ty, "null"}
						}
					}
					props[pn] = p
				}
			case strings.HasPrefix(k, "x-kubernetes-") && k != "x-kubernetes-group-version-kind":
				delete(t, k)
			default:
				t[k] = fixSchema(val, strict)
			}
		}
		if strict {
			if _, ok := t["properties"]; ok {
				if _, set := t["additionalProperties"]; !set {
					t["additionalProperties"] = false
				}
			}
		}
		return t
	}
	return v
}
