//! Bulkhead's own certificates: a CA, and the certificates it signs for the
//! controller's API and for agents. The lab and `bulkhead install
//! --generate-secrets` make theirs here, so both trust the same shape of
//! chain the controller verifies.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData, SanType,
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
    issuer: Issuer<'static, KeyPair>,
    /// The CA's own certificate and key.
    pub pem: Pem,
}

/// How far back an enrolled certificate's validity starts.
const BACKDATE: Duration = Duration::from_secs(300);

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
        Ok(Self { issuer: Issuer::new(params, key), pem })
    }

    /// A CA read back from its PEM certificate and key (the install Secret,
    /// the lab's files), to sign more certificates: an agent per new node.
    pub fn from_pem(pem: Pem) -> Result<Self, ControllerError> {
        let key = KeyPair::from_pem(&pem.key).map_err(err("the CA's key"))?;
        let issuer = Issuer::from_ca_cert_pem(&pem.cert, key).map_err(err("the CA"))?;
        Ok(Self { issuer, pem })
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

    /// An agent certificate for `node` on a key the agent made and keeps
    /// (from its signing request), valid for `valid_for` from now (backdated
    /// a few minutes, for clocks slightly behind). Returns the PEM and when
    /// it expires, since the Unix epoch.
    pub fn agent_for_key(
        &self,
        node: &str,
        key: &impl PublicKeyData,
        valid_for: Duration,
    ) -> Result<(String, Duration), ControllerError> {
        const WHAT: &str = "an enrolled agent certificate";
        let mut params = CertificateParams::new(vec![format!("{node}.{AGENT_DOMAIN}")]).map_err(err(WHAT))?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.distinguished_name.push(DnType::CommonName, format!("bulkhead-agent {node}"));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let until = now + valid_for;
        let at = |since_epoch: Duration| rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
        params.not_before = at(now.saturating_sub(BACKDATE));
        params.not_after = at(until);
        let cert = params.signed_by(key, &self.issuer).map_err(err(WHAT))?;
        Ok((cert.pem(), until))
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
        let cert = params.signed_by(&key, &self.issuer).map_err(err(what))?;
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
