package testcluster

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ProvisionerName is the StorageClass provisioner the fake provisioner serves.
const ProvisionerName = "kommons.test/fake"

// RunProvisioner is a minimal dynamic provisioner for a cluster without
// kubelets: every second it creates a pre-bound hostPath PV (never mounted,
// nothing created on disk) for each Pending claim whose StorageClass has
// provisioner == name, honouring the class's reclaim policy, access modes and
// WaitForFirstConsumer, and deletes the Released PVs it created whose policy
// is Delete. It returns when ctx ends.
func RunProvisioner(ctx context.Context, cs kubernetes.Interface, name string, logger *log.Logger) {
	runProvisioner(ctx, cs, name, "", logger)
}

// runProvisioner is RunProvisioner; with a non-empty root (the real node)
// every PV is a real directory root/<namespace>/<claim>-<uid>, mode 0777
// like the local-path provisioner's, since fsGroup does not apply to
// hostPath volumes and pods run as non-root users; it is removed with a
// released PV whose policy is Delete.
func runProvisioner(ctx context.Context, cs kubernetes.Interface, name, root string, logger *log.Logger) {
	for {
		if err := provisionOnce(ctx, cs, name, root, logger); err != nil && ctx.Err() == nil && logger != nil {
			logger.Print(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func provisionOnce(ctx context.Context, cs kubernetes.Interface, name, root string, logger *log.Logger) error {
	scs, err := cs.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	ours := map[string]storagev1.StorageClass{}
	for _, sc := range scs.Items {
		if sc.Provisioner == name {
			ours[sc.Name] = sc
		}
	}
	pvcs, err := cs.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, c := range pvcs.Items {
		if c.Spec.VolumeName != "" || c.Status.Phase != corev1.ClaimPending || c.DeletionTimestamp != nil || c.Spec.StorageClassName == nil {
			continue
		}
		sc, ok := ours[*c.Spec.StorageClassName]
		if !ok || (sc.VolumeBindingMode != nil && *sc.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer &&
			c.Annotations["volume.kubernetes.io/selected-node"] == "") {
			continue
		}
		size := c.Spec.Resources.Requests[corev1.ResourceStorage]
		if size.IsZero() {
			size = resource.MustParse("1Gi")
		}
		reclaim := corev1.PersistentVolumeReclaimDelete
		if sc.ReclaimPolicy != nil {
			reclaim = *sc.ReclaimPolicy
		}
		modes := c.Spec.AccessModes
		if len(modes) == 0 {
			modes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
		}
		path := "/kommons-fake/" + c.Namespace + "/" + c.Name
		if root != "" {
			path = filepath.Join(root, c.Namespace, c.Name+"-"+string(c.UID))
			if err := os.MkdirAll(path, 0o777); err != nil {
				return fmt.Errorf("volume for %s/%s: %w", c.Namespace, c.Name, err)
			}
			if err := os.Chmod(path, 0o777); err != nil { // past the umask
				return fmt.Errorf("volume for %s/%s: %w", c.Namespace, c.Name, err)
			}
		}
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: "pvc-" + string(c.UID), Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": name}},
			Spec: corev1.PersistentVolumeSpec{
				Capacity: corev1.ResourceList{corev1.ResourceStorage: size}, AccessModes: modes,
				PersistentVolumeReclaimPolicy: reclaim, StorageClassName: sc.Name, VolumeMode: c.Spec.VolumeMode,
				ClaimRef:               &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: c.Namespace, Name: c.Name, UID: c.UID},
				PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path}},
			},
		}
		if _, err := cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err == nil && logger != nil {
			logger.Printf("provisioned %s for %s/%s (%s, class %s)", pv.Name, c.Namespace, c.Name, size.String(), sc.Name)
		}
	}
	pvs, err := cs.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, pv := range pvs.Items {
		if pv.Annotations["pv.kubernetes.io/provisioned-by"] == name && pv.Status.Phase == corev1.VolumeReleased &&
			pv.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimDelete {
			if cs.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{}) == nil {
				if hp := pv.Spec.HostPath; root != "" && hp != nil && strings.HasPrefix(hp.Path, root+"/") {
					_ = os.RemoveAll(hp.Path)
				}
				if logger != nil {
					logger.Printf("deleted released %s", pv.Name)
				}
			}
		}
	}
	return nil
}
