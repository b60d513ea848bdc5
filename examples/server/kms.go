package main

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go/aws"
	awssession "github.com/aws/aws-sdk-go/aws/session"
	awskmsapi "github.com/aws/aws-sdk-go/service/kms"
	vaultapi "github.com/hashicorp/vault/api"
	"github.com/tink-crypto/tink-go-awskms/v2/integration/awskms"
	"github.com/tink-crypto/tink-go-gcpkms/v2/integration/gcpkms"
	"github.com/tink-crypto/tink-go-hcvault/v2/integration/hcvault"
	"github.com/tink-crypto/tink-go/v2/core/registry"
	"github.com/tink-crypto/tink-go/v2/tink"
	"google.golang.org/api/option"

	"github.com/socialcrm/socialcrm/vault/insecurekeyfile"
)

// kmsOptions reach a KMS somewhere else than its public endpoint: a
// private endpoint, or a test's fake.
type kmsOptions struct {
	// AWSEndpoint is AWS KMS's endpoint (default: the region's; the
	// environment's AWS_ENDPOINT_URL_KMS or AWS_ENDPOINT_URL).
	AWSEndpoint string
	// GCP are options of Google's API client (an endpoint, credentials).
	GCP []option.ClientOption
	// HTTPClient, when set, carries the GCP requests (AWS's client takes
	// its CA bundle from AWS_CA_BUNDLE).
	HTTPClient *http.Client
}

// openKEK opens the key-encryption key: a Tink KMS key URI (aws-kms://,
// gcp-kms://, hcvault://) or a local key file. Each KMS takes its
// credentials the way its own tools do: AWS's environment and shared
// files, Google's application default credentials, Vault's VAULT_TOKEN
// (with VAULT_ADDR, VAULT_CACERT: by default https://<host of the URI>).
func openKEK(ctx context.Context, ref string, o kmsOptions) (tink.AEAD, error) {
	if !strings.Contains(ref, "://") {
		return insecurekeyfile.Open(ref)
	}
	// The client serves this server only: nothing is registered with
	// Tink's process-wide registry.
	c, err := kmsClient(ctx, ref, o)
	if err != nil {
		return nil, fmt.Errorf("-kek: %w", err)
	}
	a, err := c.GetAEAD(ref)
	if err != nil {
		return nil, fmt.Errorf("-kek: %w", err)
	}
	return a, nil
}

// kmsClient builds the Tink KMS client of ref's scheme.
func kmsClient(ctx context.Context, ref string, o kmsOptions) (registry.KMSClient, error) {
	switch {
	case strings.HasPrefix(ref, "aws-kms://"):
		var opts []awskms.ClientOption
		endpoint := cmp.Or(o.AWSEndpoint, os.Getenv("AWS_ENDPOINT_URL_KMS"), os.Getenv("AWS_ENDPOINT_URL"))
		if endpoint != "" {
			region, err := awsRegion(ref)
			if err != nil {
				return nil, err
			}
			cfg := &aws.Config{Region: aws.String(region), Endpoint: aws.String(endpoint)}
			sess, err := awssession.NewSession(cfg)
			if err != nil {
				return nil, fmt.Errorf("AWS KMS: %w", err)
			}
			opts = append(opts, awskms.WithKMS(awskmsapi.New(sess)))
		}
		c, err := awskms.NewClientWithOptions("aws-kms://", opts...)
		if err != nil {
			return nil, fmt.Errorf("AWS KMS: %w", err)
		}
		return c, nil
	case strings.HasPrefix(ref, "gcp-kms://"):
		opts := o.GCP
		if o.HTTPClient != nil {
			opts = append(opts, option.WithHTTPClient(o.HTTPClient))
		}
		c, err := gcpkms.NewClient(ctx, "gcp-kms://", gcpkms.WithTransport(gcpkms.TransportREST), gcpkms.WithGoogleAPIClientOptions(opts...))
		if err != nil {
			return nil, fmt.Errorf("Google Cloud KMS (application default credentials): %w", err)
		}
		return c, nil
	case strings.HasPrefix(ref, "hcvault://"):
		cfg := vaultapi.DefaultConfig() // VAULT_ADDR, VAULT_CACERT, …
		if cfg.Error != nil {
			return nil, fmt.Errorf("Vault: %w", cfg.Error)
		}
		if os.Getenv(vaultapi.EnvVaultAddress) == "" {
			host, _, _ := strings.Cut(strings.TrimPrefix(ref, "hcvault://"), "/")
			cfg.Address = "https://" + host
		}
		vc, err := vaultapi.NewClient(cfg)
		if err != nil {
			return nil, fmt.Errorf("Vault: %w", err)
		}
		if vc.Token() == "" {
			return nil, fmt.Errorf("Vault: set VAULT_TOKEN to a token that may use the transit key")
		}
		c, err := hcvault.NewClientWithAEADOptions("hcvault://", vc.Logical())
		if err != nil {
			return nil, fmt.Errorf("Vault: %w", err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("unknown KMS URI scheme: use a key file or one of %s", strings.Join(kmsSchemes, ", "))
}

// awsRegion reads the region of an aws-kms://arn:<partition>:kms:<region>:… URI.
func awsRegion(ref string) (string, error) {
	parts := strings.Split(strings.TrimPrefix(ref, "aws-kms://"), ":")
	if len(parts) < 4 || parts[0] != "arn" || parts[2] != "kms" || parts[3] == "" {
		return "", fmt.Errorf("AWS KMS: %q is not aws-kms://arn:<partition>:kms:<region>:<account>:key/<id>", ref)
	}
	return parts[3], nil
}
