package realnode

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The tier's storage is what k3s ships: a default StorageClass local-path,
// whose volumes are directories on the node the pod was scheduled to. Its
// provisioner, like rancher's local-path-provisioner, makes a world-writable
// directory on that node and a hostPath volume bound to the node for every
// claim the scheduler picked a node for (a hostPath volume gets no fsGroup
// ownership, so the directory must let any user of the pod write); the
// directories are in the node's tmpfs and go with it.
const (
	storageClass  = "local-path"
	provisioner   = "rancher.io/local-path"
	storageDir    = "/var/lib/rancher/k3s/storage"
	selectedNode  = "volume.kubernetes.io/selected-node"
	provisionedBy = "volume.kubernetes.io/storage-provisioner"
)

// createStorageClass creates the default local-path class.
func createStorageClass(ctx context.Context, c client.Client) error {
	sc := &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        storageClass,
			Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"},
		},
		Provisioner:       provisioner,
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
	}
	if err := c.Create(ctx, sc); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create StorageClass %s: %w", storageClass, err)
	}
	return nil
}

// provision runs the local-path provisioner until ctx ends.
func (cl *Cluster) provision(ctx context.Context, log *slog.Logger) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		if err := cl.provisionOnce(ctx); err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "local-path provisioner", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// provisionOnce makes a volume for every claim of the class that the
// persistent volume controller handed to this provisioner, and deletes the
// volumes whose claims are gone.
func (cl *Cluster) provisionOnce(ctx context.Context) error {
	c := cl.env.Client
	var claims corev1.PersistentVolumeClaimList
	if err := c.List(ctx, &claims); err != nil {
		return fmt.Errorf("list claims: %w", err)
	}
	for _, pvc := range claims.Items {
		if ptr.Deref(pvc.Spec.StorageClassName, "") != storageClass || pvc.Spec.VolumeName != "" ||
			pvc.Annotations[provisionedBy] != provisioner || pvc.Annotations[selectedNode] == "" {
			continue
		}
		pv := volumeFor(&pvc)
		if err := cl.makeDir(ctx, pvc.Annotations[selectedNode], pv.Spec.HostPath.Path); err != nil {
			return err
		}
		if err := c.Create(ctx, pv); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("provision a volume for %s/%s: %w", pvc.Namespace, pvc.Name, err)
		}
	}
	var vols corev1.PersistentVolumeList
	if err := c.List(ctx, &vols); err != nil {
		return fmt.Errorf("list volumes: %w", err)
	}
	for _, pv := range vols.Items {
		if pv.Spec.StorageClassName == storageClass && pv.Status.Phase == corev1.VolumeReleased &&
			pv.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimDelete {
			if err := c.Delete(ctx, &pv); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete released volume %s: %w", pv.Name, err)
			}
		}
	}
	return nil
}

// makeDir makes a world-writable directory in a node's mount namespace.
func (cl *Cluster) makeDir(ctx context.Context, node, dir string) error {
	for i, n := range cl.Nodes {
		if n.Name != node {
			continue
		}
		mnt := "--mount=/proc/" + strconv.Itoa(cl.nodes[i].pid()) + "/ns/mnt"
		if _, err := run(ctx, "nsenter", mnt, "--", "mkdir", "-p", dir); err != nil {
			return fmt.Errorf("make the volume directory on node %s: %w", node, err)
		}
		if _, err := run(ctx, "nsenter", mnt, "--", "chmod", "0777", dir); err != nil {
			return fmt.Errorf("make the volume directory on node %s: %w", node, err)
		}
		return nil
	}
	return fmt.Errorf("make a volume on node %s: not a node of the tier", node)
}

// volumeFor is the hostPath volume of a claim on its selected node.
func volumeFor(pvc *corev1.PersistentVolumeClaim) *corev1.PersistentVolume {
	name := "pvc-" + string(pvc.UID)
	node := pvc.Annotations[selectedNode]
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": provisioner}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: pvc.Spec.Resources.Requests[corev1.ResourceStorage]},
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              storageClass,
			ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID, APIVersion: "v1"},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: path.Join(storageDir, name+"_"+pvc.Namespace+"_"+pvc.Name),
				Type: ptr.To(corev1.HostPathDirectoryOrCreate),
			}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{node}}},
			}}}},
		},
	}
}
