//! The id newtypes of [`crate::domain::ids`] as column values: bound and read as text, and checked on
//! the way out, so a row whose id lost its prefix is reported as corrupt instead of travelling on as a
//! string.

use crate::domain::{
    DeliveryId, EnrollmentId, EventId, OperatorId, SessionId, TenantId, VerificationId, WebhookId,
};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};

macro_rules! text_column {
    ($($name:ident),*) => {$(
        impl<DB: Database> Type<DB> for $name
        where
            String: Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: Database> Encode<'q, DB> for $name
        where
            String: Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as Database>::ArgumentBuffer<'q>,
            ) -> Result<IsNull, BoxDynError> {
                <String as Encode<'q, DB>>::encode_by_ref(&self.as_str().to_string(), buf)
            }
        }

        impl<'r, DB: Database> Decode<'r, DB> for $name
        where
            String: Decode<'r, DB>,
        {
            fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <String as Decode<'r, DB>>::decode(value)?;
                Ok($name::try_from(text)?)
            }
        }
    )*};
}

text_column!(
    TenantId,
    SessionId,
    EnrollmentId,
    VerificationId,
    WebhookId,
    EventId,
    DeliveryId,
    OperatorId
);

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row;

    #[tokio::test]
    async fn ids_round_trip_as_text_and_a_malformed_one_is_refused_on_read() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let id = EnrollmentId::new();
        let row = sqlx::query("SELECT $1 AS a, 'enr_not-an-id' AS b, $2 AS c")
            .bind(&id)
            .bind(SessionId::new().as_str())
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(row.try_get::<EnrollmentId, _>("a").unwrap(), id);
        assert_eq!(row.try_get::<String, _>("a").unwrap(), id.as_str());
        assert!(row.try_get::<EnrollmentId, _>("b").is_err());
        assert!(
            row.try_get::<EnrollmentId, _>("c").is_err(),
            "a session id is no enrollment id"
        );
    }
}
