//! Bulkhead's own certificates: a CA, and the certificates it signs for the
//! controller's API and (later) for agents. The lab and `bulkhead install
//! --generate-secrets` make theirs here, so both trust the same shape of
//! chain the controller verifies.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};

use bulkhead_api::tunnel::tls::AGENT_DOMAIN;

use crate::error::ControllerError;

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pem {
    /// The certificate.
    pub cert: String,
    /// The private key (PKCS#8).
    pub key: String,
}

/// A CA that can sign server and client certificates.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    /// The CA's own certificate and key.
    pub pem: Pem,
}

fn err(what: &'static str) -> impl Fn(rcgen::Error) -> ControllerError {
    move |e| ControllerError::Pki { what, message: e.to_string() }
}

impl Ca {
    /// A new self-signed CA named `common_name`.
    pub fn generate(common_name: &str) -> Result<Self, ControllerError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err("the CA"))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().map_err(err("the CA's key"))?;
        let cert = params.self_signed(&key).map_err(err("the CA"))?;
        let pem = Pem { cert: cert.pem(), key: key.serialize_pem() };
        Ok(Self { params, key, pem })
    }

    /// A server certificate for `names` (DNS names) and `ips`.
    pub fn server(&self, common_name: &str, names: &[String], ips: &[IpAddr]) -> Result<Pem, ControllerError> {
        let mut params = CertificateParams::new(names.to_vec()).map_err(err("the server certificate"))?;
        params.subject_alt_names.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(common_name, params, "the server certificate")
    }

    /// A client certificate naming `node` (an agent), for mTLS to the
    /// controller. The node rides in a DNS name under [`AGENT_DOMAIN`], so no
    /// server certificate of the same CA can pass for an agent.
    pub fn agent(&self, node: &str) -> Result<Pem, ControllerError> {
        let mut params =
            CertificateParams::new(vec![format!("{node}.{AGENT_DOMAIN}")]).map_err(err("an agent certificate"))?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(&format!("bulkhead-agent {node}"), params, "an agent certificate")
    }

    fn sign(
        &self,
        common_name: &str,
        mut params: CertificateParams,
        what: &'static str,
    ) -> Result<Pem, ControllerError> {
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        let key = KeyPair::generate().map_err(err(what))?;
        let cert = params.signed_by(&key, &Issuer::from_params(&self.params, &self.key)).map_err(err(what))?;
        Ok(Pem { cert: cert.pem(), key: key.serialize_pem() })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_server_certificate_verifies_against_its_ca_for_its_names_only() {
        use rustls::client::danger::ServerCertVerifier;
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
        let ca = Ca::generate("test CA").unwrap();
        let server =
            ca.server("bulkhead-controller", &["bulkhead.example".into()], &["127.0.0.1".parse().unwrap()]).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(ca.pem.cert.as_bytes()).unwrap()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider).build().unwrap();
        let leaf = CertificateDer::from_pem_slice(server.cert.as_bytes()).unwrap();
        let now = UnixTime::now();
        for name in ["bulkhead.example", "127.0.0.1"] {
            let name = ServerName::try_from(name).unwrap();
            assert!(verifier.verify_server_cert(&leaf, &[], &name, &[], now).is_ok(), "{name:?}");
        }
        let other = ServerName::try_from("other.example").unwrap();
        assert!(verifier.verify_server_cert(&leaf, &[], &other, &[], now).is_err());
        assert!(server.key.contains("PRIVATE KEY"));
    }
}
