//! Identity and templates are unreadable in the database; a deleted (shredded) enrollment cannot
//! be decrypted any more.

use crate::helpers::*;
use crate::store_contract::{dump_database, insert_enrollment, TEST_NAME};
use jpki_face::crypto::{Owner, RecordKind};
use jpki_face::store::AuditEvent;

crate::on_both_backends!(personal_data_is_encrypted_and_shredded_on_delete);

async fn personal_data_is_encrypted_and_shredded_on_delete(backend: Backend) {
    let app = spawn_app(backend).await;
    let store = app.ctx.svc.store.as_ref();
    let id = insert_enrollment(&app, &app.tenant_id, "verified").await;

    let dump = dump_database(&app).await;
    assert!(
        dump.contains(id.as_str()),
        "the dump sees the enrollment row"
    );
    assert!(!dump.contains(TEST_NAME), "name stored in plaintext");
    assert!(
        !dump.contains("1990-01-02"),
        "birth date stored in plaintext"
    );

    // Readable with the key ring while the wrapped data key exists.
    let row = store
        .get_enrollment(&app.tenant_id, &id)
        .await
        .unwrap()
        .unwrap();
    let owner = Owner {
        tenant_id: &app.tenant_id,
        enrollment_id: &id,
    };
    let dek = app
        .ctx
        .svc
        .keys
        .unwrap_key(owner, row.wrapped_key.as_ref().unwrap())
        .unwrap();
    let sealed_identity = row.identity_sealed.clone().unwrap();
    let identity = dek
        .open(owner, RecordKind::Identity, sealed_identity.expose())
        .unwrap();
    assert!(String::from_utf8(identity).unwrap().contains(TEST_NAME));
    let wrapped_before = row.wrapped_key.clone().unwrap();
    drop(dek);

    let audit = AuditEvent::new(
        &app.tenant_id,
        jpki_face::domain::AuditKind::EnrollmentDeleted,
        id.as_str(),
        serde_json::json!({}),
    );
    assert!(store
        .delete_enrollment(
            &app.tenant_id,
            &id,
            &audit,
            jpki_face::domain::now_millis(),
            &[]
        )
        .await
        .unwrap());
    assert!(store
        .get_enrollment(&app.tenant_id, &id)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .templates(&app.tenant_id, &id)
        .await
        .unwrap()
        .is_empty());

    // The database no longer holds the wrapped key, the sealed identity or any template.
    let dump = dump_database(&app).await;
    let row_line = dump
        .lines()
        .find(|l| l.starts_with(&format!("id={id}")))
        .expect("tombstone row kept");
    assert!(
        row_line.contains("wrapped_dek=\t")
            && row_line.contains("identity_sealed=\t")
            && row_line.contains("status=deleted"),
        "{row_line}"
    );
    assert!(!dump.contains(&String::from_utf8_lossy(&wrapped_before.blob).into_owned()));
    // Even a copy of the old ciphertext is useless without the data key: no other key opens it.
    let (other_dek, _) = app.ctx.svc.keys.new_data_key(owner);
    assert!(other_dek
        .open(owner, RecordKind::Identity, sealed_identity.expose())
        .is_err());
    // The tombstone is in the audit chain.
    let rows = store.audit_rows(&app.tenant_id).await.unwrap();
    assert_eq!(rows.last().unwrap().event, "enrollment.deleted");
}
