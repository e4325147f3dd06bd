package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"
)

// How a node joins, as kubeadm's nodes do: its kubelet authenticates with a
// bootstrap token only to ask for its client certificate (a
// CertificateSigningRequest for kubernetes.io/kube-apiserver-client-kubelet,
// approved by kube-controller-manager's csrapproving controller and signed
// by its signer), and from then on as system:node:<name>, under the Node
// authorizer and NodeRestriction.

// bootstrapGroup is the extra group of the stand-in's bootstrap token, as
// kubeadm's system:bootstrappers:kubeadm:default-node-token.
const bootstrapGroup = bootstrapapi.BootstrapDefaultGroup + ":k3s-standin:default-node-token"

// bootstrapToken derives the node bootstrap token from the cluster token.
// k3d's K3S_TOKEN is a plain random string, not of a bootstrap token's form
// ([a-z0-9]{6}.[a-z0-9]{16}); the server and every agent derive the same
// token from it, the first 22 hexadecimal digits of a SHA-256 of it. Only
// who knows the cluster token can join, as before.
func bootstrapToken(clusterToken string) (id, secret string) {
	sum := sha256.Sum256([]byte("lab k3s stand-in node bootstrap token\x00" + clusterToken))
	h := hex.EncodeToString(sum[:])
	return h[:6], h[6:22]
}

// bootstrapTokenString is the token as a bearer token: id.secret.
func bootstrapTokenString(clusterToken string) string {
	id, secret := bootstrapToken(clusterToken)
	return id + "." + secret
}

// bootstrapSecret is the bootstrap token as kube-apiserver's
// --enable-bootstrap-token-auth reads it: kube-system/bootstrap-token-<id>,
// for authentication as system:bootstrap:<id> in bootstrapGroup, and for
// signing kube-public/cluster-info (kube-controller-manager's
// bootstrapsigner). It does not expire: k3s's token does not either.
func bootstrapSecret(clusterToken string) *corev1.Secret {
	id, secret := bootstrapToken(clusterToken)
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: bootstrapapi.BootstrapTokenSecretPrefix + id, Namespace: metav1.NamespaceSystem},
		Type:       bootstrapapi.SecretTypeBootstrapToken,
		StringData: map[string]string{
			bootstrapapi.BootstrapTokenIDKey:               id,
			bootstrapapi.BootstrapTokenSecretKey:           secret,
			bootstrapapi.BootstrapTokenDescriptionKey:      "the nodes' bootstrap token, derived from the cluster token by lab's k3s stand-in",
			bootstrapapi.BootstrapTokenUsageAuthentication: "true",
			bootstrapapi.BootstrapTokenUsageSigningKey:     "true",
			bootstrapapi.BootstrapTokenExtraGroupsKey:      bootstrapGroup,
		},
	}
}

// bootstrapRBAC returns the bindings kubeadm creates for joining nodes:
// bootstrapping nodes may ask for certificates (system:node-bootstrapper)
// and have their node client certificate approved automatically
// (…:nodeclient); nodes have the renewal of their own approved
// (…:selfnodeclient). The Role lets anyone read kube-public/cluster-info,
// where an agent finds the cluster CA before it trusts the server.
func bootstrapRBAC() ([]*rbacv1.ClusterRoleBinding, *rbacv1.Role, *rbacv1.RoleBinding) {
	group := func(name string) []rbacv1.Subject {
		return []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: name}}
	}
	bind := func(name, role string, subjects []rbacv1.Subject) *rbacv1.ClusterRoleBinding {
		return &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   subjects,
		}
	}
	crbs := []*rbacv1.ClusterRoleBinding{
		bind("k3s-standin:kubelet-bootstrap", "system:node-bootstrapper", group(bootstrapGroup)),
		bind("k3s-standin:node-autoapprove-bootstrap", "system:certificates.k8s.io:certificatesigningrequests:nodeclient", group(bootstrapGroup)),
		bind("k3s-standin:node-autoapprove-certificate-rotation", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", group("system:nodes")),
	}
	const name = "k3s-standin:bootstrap-signer-clusterinfo"
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespacePublic},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{bootstrapapi.ConfigMapClusterInfo}, Verbs: []string{"get"},
		}},
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespacePublic},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user.Anonymous}},
	}
	return crbs, role, rb
}

// clusterInfo is kube-public/cluster-info as kubeadm writes it: a kubeconfig
// with the API server's address and the cluster CA, which the bootstrapsigner
// signs with every signing bootstrap token (jws-kubeconfig-<id>).
func clusterInfo(server string, caPEM []byte) (*corev1.ConfigMap, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[""] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("encode cluster-info: %w", err)
	}
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: bootstrapapi.ConfigMapClusterInfo, Namespace: metav1.NamespacePublic},
		Data:       map[string]string{bootstrapapi.KubeConfigKey: string(b)},
	}, nil
}

// authenticationConfig is the API server's --authentication-config:
// anonymous requests only for cluster-info (as kubeadm, which leaves
// anonymous authentication on everywhere, lets system:anonymous read it),
// so that an agent reads it before it sends the token anywhere.
func authenticationConfig() string {
	return `apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
anonymous:
  enabled: true
  conditions:
    - path: ` + clusterInfoPath + `
`
}

// clusterInfoPath is cluster-info's path in the API.
const clusterInfoPath = "/api/v1/namespaces/" + metav1.NamespacePublic + "/configmaps/" + bootstrapapi.ConfigMapClusterInfo

// errNotSigned: the bootstrapsigner has not signed cluster-info with the
// token yet.
var errNotSigned = errors.New("cluster-info carries no signature of the bootstrap token (yet)")

// signedClusterCA returns the cluster CA from cluster-info once the
// kubeconfig there carries the bootstrapsigner's signature made with the
// bootstrap token (id, secret): the server that answered knows the token,
// as kubeadm's join checks it.
func signedClusterCA(cm *corev1.ConfigMap, id, secret string) ([]byte, error) {
	sig, ok := cm.Data[bootstrapapi.JWSSignatureKeyPrefix+id]
	if !ok {
		return nil, errNotSigned
	}
	if !jws.DetachedTokenIsValid(sig, cm.Data[bootstrapapi.KubeConfigKey], id, secret) {
		return nil, fmt.Errorf("the signature of %s/%s does not match the bootstrap token: a server that does not know the cluster token", cm.Namespace, cm.Name)
	}
	return clusterCA(cm)
}

// clusterCA reads the cluster CA from cluster-info's kubeconfig.
func clusterCA(cm *corev1.ConfigMap) ([]byte, error) {
	cfg, err := clientcmd.Load([]byte(cm.Data[bootstrapapi.KubeConfigKey]))
	if err != nil {
		return nil, fmt.Errorf("read the kubeconfig of %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	for _, c := range cfg.Clusters {
		if len(c.CertificateAuthorityData) > 0 {
			return c.CertificateAuthorityData, nil
		}
	}
	return nil, fmt.Errorf("%s/%s names no certificate authority", cm.Namespace, cm.Name)
}

// setUpBootstrap creates, or updates to what they should say, the bootstrap
// token, its RBAC bindings and cluster-info (server is the API server's
// address on the nodes' network), and starts approving the certificate
// requests that kube-controller-manager leaves to k3s (see approveCSRs).
func setUpBootstrap(ctx context.Context, log *slog.Logger, cs kubernetes.Interface, clusterToken, server, caFile string) error {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("read the cluster CA: %w", err)
	}
	if err := apply(ctx, bootstrapSecret(clusterToken), cs.CoreV1().Secrets(metav1.NamespaceSystem)); err != nil {
		return err
	}
	crbs, role, rb := bootstrapRBAC()
	for _, crb := range crbs {
		if err := apply(ctx, crb, cs.RbacV1().ClusterRoleBindings()); err != nil {
			return err
		}
	}
	if err := apply(ctx, role, cs.RbacV1().Roles(metav1.NamespacePublic)); err != nil {
		return err
	}
	if err := apply(ctx, rb, cs.RbacV1().RoleBindings(metav1.NamespacePublic)); err != nil {
		return err
	}
	ci, err := clusterInfo(server, caPEM)
	if err != nil {
		return err
	}
	if err := applyClusterInfo(ctx, cs, ci); err != nil {
		return err
	}
	id, _ := bootstrapToken(clusterToken)
	log.Info("nodes join with a bootstrap token derived from the cluster token", "tokenID", id, "group", bootstrapGroup)
	go approveCSRs(ctx, log, cs)
	return nil
}

// applyClusterInfo writes cluster-info's kubeconfig, keeping the signatures
// that the bootstrapsigner added (it renews them when the kubeconfig
// changes).
func applyClusterInfo(ctx context.Context, cs kubernetes.Interface, want *corev1.ConfigMap) error {
	cms := cs.CoreV1().ConfigMaps(metav1.NamespacePublic)
	cur, err := cms.Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = cms.Create(ctx, want, metav1.CreateOptions{})
	case err == nil && cur.Data[bootstrapapi.KubeConfigKey] != want.Data[bootstrapapi.KubeConfigKey]:
		if cur.Data == nil {
			cur.Data = map[string]string{}
		}
		cur.Data[bootstrapapi.KubeConfigKey] = want.Data[bootstrapapi.KubeConfigKey]
		_, err = cms.Update(ctx, cur, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("write %s/%s: %w", want.Namespace, want.Name, err)
	}
	return nil
}

// object is what apply needs of an API object.
type object interface {
	GetName() string
	GetResourceVersion() string
	SetResourceVersion(string)
}

// objectClient is the part of a typed client that apply uses.
type objectClient[T object] interface {
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
}

// apply creates obj, or replaces the existing one with it: the server
// owns these objects and writes them at every start.
func apply[T object](ctx context.Context, obj T, c objectClient[T]) error {
	_, err := c.Create(ctx, obj, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		var cur T
		if cur, err = c.Get(ctx, obj.GetName(), metav1.GetOptions{}); err == nil {
			obj.SetResourceVersion(cur.GetResourceVersion())
			_, err = c.Update(ctx, obj, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("write %T %s: %w", obj, obj.GetName(), err)
	}
	return nil
}
