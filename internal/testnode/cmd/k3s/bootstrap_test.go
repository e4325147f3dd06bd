package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
	"sigs.k8s.io/yaml"
)

// TestBootstrapToken checks that the server and the agents derive the same
// valid bootstrap token from k3d's plain cluster token, and different ones
// from different tokens.
func TestBootstrapToken(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, clusterToken string }{
		{"k3d's random token", "AbCdEfGhIjKlMnOpQrSt"},
		{"short", "x"},
		{"already of a bootstrap token's form", "abcdef.0123456789abcdef"},
		{"punctuation", "a b:c/d=e"},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := bootstrapTokenString(tt.clusterToken)
			if !bootstraputil.IsValidBootstrapToken(got) {
				t.Errorf("bootstrapTokenString(%q) = %q, not a valid bootstrap token", tt.clusterToken, got)
			}
			if again := bootstrapTokenString(tt.clusterToken); again != got {
				t.Errorf("two derivations differ: %q, %q", got, again)
			}
			if strings.Contains(got, tt.clusterToken) {
				t.Errorf("the bootstrap token %q shows the cluster token", got)
			}
		})
	}
	for _, tt := range tests {
		got := bootstrapTokenString(tt.clusterToken)
		if other, dup := seen[got]; dup {
			t.Errorf("cluster tokens %q and %q give the same bootstrap token", other, tt.clusterToken)
		}
		seen[got] = tt.clusterToken
	}
}

// TestBootstrapSecret checks the Secret against what kube-apiserver's
// bootstrap token authenticator and the bootstrapsigner read.
func TestBootstrapSecret(t *testing.T) {
	t.Parallel()
	s := bootstrapSecret("AbCdEfGhIjKlMnOpQrSt")
	id, secret := bootstrapToken("AbCdEfGhIjKlMnOpQrSt")
	if s.Namespace != "kube-system" || s.Name != "bootstrap-token-"+id || s.Type != "bootstrap.kubernetes.io/token" {
		t.Errorf("secret %s/%s of type %s", s.Namespace, s.Name, s.Type)
	}
	want := map[string]string{
		"token-id": id, "token-secret": secret,
		"usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
		"auth-extra-groups": "system:bootstrappers:k3s-standin:default-node-token",
	}
	for k, v := range want {
		if s.StringData[k] != v {
			t.Errorf("%s = %q, want %q", k, s.StringData[k], v)
		}
	}
	if _, ok := s.StringData[bootstrapapi.BootstrapTokenExpirationKey]; ok {
		t.Errorf("the token expires; the cluster token does not")
	}
	if err := bootstraputil.ValidateBootstrapGroupName(bootstrapGroup); err != nil {
		t.Errorf("extra group: %v", err)
	}
}

// TestBootstrapRBAC checks the bindings against kubeadm's: who may ask for
// certificates, whose node client requests the csrapproving controller
// approves, and who may read cluster-info.
func TestBootstrapRBAC(t *testing.T) {
	t.Parallel()
	crbs, role, rb := bootstrapRBAC()
	got := map[string][]string{}
	for _, b := range crbs {
		if b.RoleRef.Kind != "ClusterRole" {
			t.Errorf("%s refers to a %s", b.Name, b.RoleRef.Kind)
		}
		for _, s := range b.Subjects {
			got[b.RoleRef.Name] = append(got[b.RoleRef.Name], s.Kind+"/"+s.Name)
		}
	}
	want := map[string][]string{
		"system:node-bootstrapper": {"Group/system:bootstrappers:k3s-standin:default-node-token"},
		"system:certificates.k8s.io:certificatesigningrequests:nodeclient":     {"Group/system:bootstrappers:k3s-standin:default-node-token"},
		"system:certificates.k8s.io:certificatesigningrequests:selfnodeclient": {"Group/system:nodes"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cluster role bindings (-want +got):\n%s", diff)
	}
	wantRule := rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"cluster-info"}, Verbs: []string{"get"}}
	if role.Namespace != "kube-public" || len(role.Rules) != 1 || !cmp.Equal(wantRule, role.Rules[0]) {
		t.Errorf("role %s/%s rules %+v, want only %+v", role.Namespace, role.Name, role.Rules, wantRule)
	}
	if rb.Namespace != "kube-public" || rb.RoleRef.Name != role.Name || len(rb.Subjects) != 1 || rb.Subjects[0] != (rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: "User", Name: "system:anonymous"}) {
		t.Errorf("role binding %+v", rb)
	}
}

// TestClusterInfo checks that an agent reads back the CA the server wrote.
func TestClusterInfo(t *testing.T) {
	t.Parallel()
	ca := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	cm, err := clusterInfo("https://172.18.0.2:6443", ca)
	if err != nil {
		t.Fatal(err)
	}
	if cm.Namespace != "kube-public" || cm.Name != "cluster-info" {
		t.Errorf("config map %s/%s", cm.Namespace, cm.Name)
	}
	got, err := clusterCA(cm)
	if err != nil || string(got) != string(ca) {
		t.Errorf("clusterCA = %q, %v; want %q", got, err, ca)
	}
	cm.Data["kubeconfig"] = "apiVersion: v1\nkind: Config\nclusters: []\n"
	if _, err := clusterCA(cm); err == nil {
		t.Errorf("clusterCA of a kubeconfig without a CA: no error")
	}
}

// TestSignedClusterCA checks that an agent accepts cluster-info's CA only
// with the bootstrapsigner's signature made with its own bootstrap token.
func TestSignedClusterCA(t *testing.T) {
	t.Parallel()
	ca := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	id, secret := bootstrapToken("AbCdEfGhIjKlMnOpQrSt")
	otherID, otherSecret := bootstrapToken("another cluster")
	signed := func(t *testing.T, id, secret string, tamper bool) *corev1.ConfigMap {
		t.Helper()
		cm, err := clusterInfo("https://172.18.0.2:6443", ca)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := jws.ComputeDetachedSignature(cm.Data["kubeconfig"], id, secret)
		if err != nil {
			t.Fatal(err)
		}
		cm.Data["jws-kubeconfig-"+id] = sig
		if tamper {
			cm.Data["kubeconfig"] = strings.Replace(cm.Data["kubeconfig"], "172.18.0.2", "172.18.0.66", 1)
		}
		return cm
	}
	unsigned, err := clusterInfo("https://172.18.0.2:6443", ca)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cm      *corev1.ConfigMap
		wantErr string
	}{
		{"signed with the token", signed(t, id, secret, false), ""},
		{"not signed yet", unsigned, "no signature"},
		{"signed with another token", signed(t, otherID, otherSecret, false), "no signature"},
		{"another secret under our id", signed(t, id, otherSecret, false), "does not match"},
		{"kubeconfig changed after signing", signed(t, id, secret, true), "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := signedClusterCA(tt.cm, id, secret)
			switch {
			case tt.wantErr == "" && (err != nil || string(got) != string(ca)):
				t.Errorf("signedClusterCA = %q, %v; want the CA", got, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("signedClusterCA = %q, %v; want an error with %q", got, err, tt.wantErr)
			}
		})
	}
}

// TestAuthenticationConfig checks that the API server lets anonymous
// requests read cluster-info and nothing else.
func TestAuthenticationConfig(t *testing.T) {
	t.Parallel()
	var cfg apiserverv1.AuthenticationConfiguration
	if err := yaml.UnmarshalStrict([]byte(authenticationConfig()), &cfg); err != nil {
		t.Fatal(err)
	}
	want := &apiserverv1.AnonymousAuthConfig{Enabled: true, Conditions: []apiserverv1.AnonymousAuthCondition{{Path: "/api/v1/namespaces/kube-public/configmaps/cluster-info"}}}
	if diff := cmp.Diff(want, cfg.Anonymous); diff != "" || cfg.Kind != "AuthenticationConfiguration" || cfg.APIVersion != "apiserver.config.k8s.io/v1" {
		t.Errorf("%s %s, anonymous (-want +got):\n%s", cfg.APIVersion, cfg.Kind, diff)
	}
}

// TestControlPlaneAuthentication checks the API server's and the
// controllers' flags for TLS bootstrap: bootstrap tokens on, no static
// token file (the cluster token once made agents system:masters), the
// bootstrap token controllers on, Node authorization and NodeRestriction.
func TestControlPlaneAuthentication(t *testing.T) {
	t.Parallel()
	_, apiserver, cm, _ := controlPlane(config{}, []byte{172, 18, 0, 2}, tlsFiles{authnConfig: "/authn.yaml"})
	tests := []struct {
		name    string
		args    []string
		want    []string
		notWant string
	}{
		{"apiserver", apiserver, []string{
			"--enable-bootstrap-token-auth=true", "--authorization-mode=Node,RBAC",
			"--enable-admission-plugins=NodeRestriction", "--authentication-config=/authn.yaml",
		}, "--token-auth-file"},
		// --anonymous-auth and the configuration's anonymous section
		// exclude each other.
		{"apiserver anonymous", apiserver, nil, "--anonymous-auth"},
		{"controller-manager", cm, []string{
			"--controllers=*,bootstrapsigner,tokencleaner",
			"--cluster-signing-cert-file=" + tlsDir + "/ca.crt",
		}, "--controllers=-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, w := range tt.want {
				if !slices.Contains(tt.args, w) {
					t.Errorf("no %s in %v", w, tt.args)
				}
			}
			for _, a := range tt.args {
				if strings.HasPrefix(a, tt.notWant) {
					t.Errorf("%s in %v", a, tt.args)
				}
			}
		})
	}
}
