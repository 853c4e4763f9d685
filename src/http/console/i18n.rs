//! The console's words in Japanese (the default) and English. Every message is one match arm with
//! both languages, so neither can be missing. Codes (statuses, reasons, audit events) are shown as
//! they are in the API, beside a translated label where one exists.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ja,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ja" => Some(Lang::Ja),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The `jf_lang` cookie, else English when the browser's first choice is English, else Japanese.
    pub fn of(headers: &axum::http::HeaderMap) -> Self {
        if let Some(lang) = super::cookies::cookie(headers, super::cookies::LANG_COOKIE)
            .as_deref()
            .and_then(Lang::parse)
        {
            return lang;
        }
        let first = headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if first.starts_with("en") {
            Lang::En
        } else {
            Lang::Ja
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang::of(&parts.headers))
    }
}

/// Every sentence and label of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg {
    Console,
    Dashboard,
    Enrollments,
    Reviews,
    Webhooks,
    ApiKeys,
    Settings,
    Operators,
    Logout,
    Language,
    Change,
    Login,
    Tenant,
    LoginName,
    Password,
    TotpCode,
    LoginRefused,
    DecisionsPerDay,
    Day,
    Total,
    Last14Days,
    Last30Days,
    ScoreDistribution,
    ScoreChartCaption,
    Threshold,
    TargetFmr,
    FaceModel,
    NoScores,
    ValidityHealth,
    WebhookBacklog,
    PendingDeliveries,
    Status,
    Reason,
    From,
    To,
    Any,
    Filter,
    SubjectRef,
    SubjectFilter,
    SetFilter,
    ClearFilter,
    Id,
    Created,
    Updated,
    Score,
    Reasons,
    NextPage,
    NoRows,
    Checks,
    Check,
    Result,
    History,
    AuditTrail,
    Seq,
    Time,
    Event,
    Details,
    ChainVerified,
    ChainBroken,
    LinkOk,
    LinkBroken,
    Endpoint,
    Events,
    Enabled,
    Disabled,
    Deliveries,
    Retry,
    Attempts,
    Retried,
    CreateKey,
    NewKeyShownOnce,
    Revoke,
    Revoked,
    Live,
    KeyState,
    SettingsJson,
    SettingsHelp,
    Save,
    Saved,
    Role,
    CreateOperator,
    NewOperatorSecret,
    Disable,
    Locked,
    Active,
    Forbidden,
    NotFound,
    BadRequest,
    CsrfFailed,
    Conflict,
    Unavailable,
    Internal,
    ErrorTitle,
    BackToDashboard,
    Yes,
    No,
    ReviewQueue,
    Review,
    ChipPhoto,
    Selfie,
    EvidenceHidden,
    EvidenceGone,
    ReasonCode,
    Note,
    Approve,
    Reject,
    FourEyesNone,
    FourEyesAwaiting,
    Decided,
    AwaitingSecond,
    Deadline,
    Approvals,
    Scores,
}

impl Msg {
    pub fn text(self, lang: Lang) -> &'static str {
        let (ja, en) = self.both();
        match lang {
            Lang::Ja => ja,
            Lang::En => en,
        }
    }

    fn both(self) -> (&'static str, &'static str) {
        use Msg::*;
        match self {
            Console => ("管理コンソール", "Console"),
            Dashboard => ("ダッシュボード", "Dashboard"),
            Enrollments => ("登録一覧", "Enrollments"),
            Reviews => ("審査キュー", "Review queue"),
            Webhooks => ("Webhook", "Webhooks"),
            ApiKeys => ("APIキー", "API keys"),
            Settings => ("テナント設定", "Tenant settings"),
            Operators => ("オペレーター", "Operators"),
            Logout => ("ログアウト", "Log out"),
            Language => ("表示言語", "Language"),
            Change => ("変更", "Change"),
            Login => ("ログイン", "Log in"),
            Tenant => ("テナントID", "Tenant id"),
            LoginName => ("ログイン名", "Login name"),
            Password => ("パスワード", "Password"),
            TotpCode => ("確認コード（6桁）", "Authenticator code (6 digits)"),
            LoginRefused => (
                "ログインできませんでした。入力内容を確認してください。",
                "Login refused. Check what you entered.",
            ),
            DecisionsPerDay => ("日別の判定件数", "Decisions per day"),
            Day => ("日付", "Day"),
            Total => ("合計", "Total"),
            Last14Days => ("直近14日", "Last 14 days"),
            Last30Days => ("直近30日", "Last 30 days"),
            ScoreDistribution => ("顔照合スコアの分布", "Face score distribution"),
            ScoreChartCaption => (
                "直近の登録の顔照合スコア（縦線はしきい値）",
                "Face scores of the latest enrollments (the vertical line is the threshold)",
            ),
            Threshold => ("しきい値", "Threshold"),
            TargetFmr => ("目標他人受入率 (FMR)", "Target FMR"),
            FaceModel => ("顔照合モデル", "Face model"),
            NoScores => ("スコアのある登録はまだありません。", "No enrollment has a score yet."),
            ValidityHealth => ("失効確認・依存サービスの状態", "Validity source and dependencies"),
            WebhookBacklog => ("Webhook 未配信", "Webhook backlog"),
            PendingDeliveries => ("未配信件数", "Pending deliveries"),
            Status => ("状態", "Status"),
            Reason => ("理由", "Reason"),
            From => ("開始日", "From"),
            To => ("終了日", "To"),
            Any => ("すべて", "Any"),
            Filter => ("絞り込む", "Filter"),
            SubjectRef => ("利用者参照ID", "Subject reference"),
            SubjectFilter => ("利用者参照IDで絞り込み中", "Filtered by subject reference"),
            SetFilter => ("参照IDで絞り込む", "Filter by reference"),
            ClearFilter => ("参照IDの絞り込みを解除", "Clear the reference filter"),
            Id => ("ID", "Id"),
            Created => ("作成日時", "Created"),
            Updated => ("更新日時", "Updated"),
            Score => ("スコア", "Score"),
            Reasons => ("理由", "Reasons"),
            NextPage => ("次のページ", "Next page"),
            NoRows => ("該当するものはありません。", "Nothing matches."),
            Checks => ("確認項目", "Checks"),
            Check => ("項目", "Check"),
            Result => ("結果", "Result"),
            History => ("状態の履歴", "Status history"),
            AuditTrail => ("監査ログ", "Audit trail"),
            Seq => ("連番", "Seq"),
            Time => ("日時", "Time"),
            Event => ("イベント", "Event"),
            Details => ("詳細", "Details"),
            ChainVerified => (
                "監査ログのハッシュチェーンを検証しました（改ざんなし）。",
                "The audit trail's hash chain verified (untampered).",
            ),
            ChainBroken => (
                "監査ログのハッシュチェーンが一致しません。",
                "The audit trail's hash chain does NOT verify.",
            ),
            LinkOk => ("一致", "ok"),
            LinkBroken => ("不一致", "broken"),
            Endpoint => ("送信先", "Endpoint"),
            Events => ("イベント種別", "Events"),
            Enabled => ("有効", "Enabled"),
            Disabled => ("無効", "Disabled"),
            Deliveries => ("直近の配信", "Recent deliveries"),
            Retry => ("再送", "Retry"),
            Attempts => ("試行回数", "Attempts"),
            Retried => ("再送を予約しました。", "The delivery is scheduled again."),
            CreateKey => ("APIキーを発行", "Create an API key"),
            NewKeyShownOnce => (
                "新しいAPIキーです。この画面でのみ表示されます。安全に保管してください。",
                "The new API key. It is shown only now: store it safely.",
            ),
            Revoke => ("失効", "Revoke"),
            Revoked => ("失効済み", "Revoked"),
            Live => ("有効", "Live"),
            KeyState => ("状態", "State"),
            SettingsJson => ("設定（JSON）", "Settings (JSON)"),
            SettingsHelp => (
                "未指定の項目は設定ファイルの既定値に従います。項目は docs/api.md を参照してください。",
                "Fields left out follow the configuration's defaults. See docs/api.md for the fields.",
            ),
            Save => ("保存", "Save"),
            Saved => ("保存しました。", "Saved."),
            Role => ("権限", "Role"),
            CreateOperator => ("オペレーターを追加", "Add an operator"),
            NewOperatorSecret => (
                "認証アプリに登録する秘密鍵です。この画面でのみ表示されます。",
                "The secret for the authenticator app. It is shown only now.",
            ),
            Disable => ("無効化", "Disable"),
            Locked => ("ロック中", "Locked"),
            Active => ("有効", "Active"),
            Forbidden => ("この操作の権限がありません。", "You may not do this."),
            NotFound => ("見つかりません。", "Not found."),
            BadRequest => ("入力内容に誤りがあります。", "The request is not valid."),
            CsrfFailed => (
                "フォームの有効期限が切れたか、別のサイトから送信されました。ページを開き直してください。",
                "The form expired or was sent from another site. Open the page again.",
            ),
            Conflict => ("すでに処理されています。", "This was already done."),
            Unavailable => (
                "一時的に利用できません。しばらくしてから再度お試しください。",
                "Temporarily unavailable. Try again shortly.",
            ),
            Internal => ("内部エラーが発生しました。", "Internal error."),
            ErrorTitle => ("エラー", "Error"),
            BackToDashboard => ("ダッシュボードへ戻る", "Back to the dashboard"),
            Yes => ("はい", "yes"),
            No => ("いいえ", "no"),
            ReviewQueue => ("審査待ち", "Waiting for review"),
            Review => ("審査", "Review"),
            ChipPhoto => ("券面（ICチップ）の顔写真", "Chip photo"),
            Selfie => ("自撮り写真", "Selfie"),
            EvidenceHidden => (
                "写真の閲覧には審査者以上の権限が必要です。",
                "Viewing the photos needs the reviewer role.",
            ),
            EvidenceGone => ("写真は保持期間を過ぎ、破棄されました。", "The photos were shredded."),
            ReasonCode => ("理由コード", "Reason code"),
            Note => ("メモ", "Note"),
            Approve => ("承認", "Approve"),
            Reject => ("否認", "Reject"),
            FourEyesNone => ("承認はまだありません。", "No approval yet."),
            FourEyesAwaiting => (
                "1人目の承認済み。別の審査者による2人目の承認が必要です。",
                "Approved once; a second, different reviewer must approve.",
            ),
            Decided => ("判定しました。", "Decided."),
            AwaitingSecond => (
                "承認しました。別の審査者の承認を待っています。",
                "Approved; waiting for a second reviewer.",
            ),
            Deadline => ("審査期限", "Review deadline"),
            Approvals => ("承認", "Approvals"),
            Scores => ("スコア", "Scores"),
        }
    }
}

/// The label of an enrollment status (the code is shown beside it).
pub fn status_label(status: &str, lang: Lang) -> &'static str {
    let (ja, en) = match status {
        "verified" => ("確認済み", "verified"),
        "rejected" => ("否認", "rejected"),
        "revoked" => ("失効", "revoked"),
        "identity_changed" => ("基本4情報変更", "identity changed"),
        "status_unknown" => ("失効状態不明", "status unknown"),
        "in_review" => ("審査中", "in review"),
        "deleted" => ("削除済み", "deleted"),
        _ => ("その他", "other"),
    };
    match lang {
        Lang::Ja => ja,
        Lang::En => en,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_say_something() {
        // Every arm has two texts by construction; check that none is empty by walking a sample
        // that spans the enum, and that the languages differ where they should.
        for m in [
            Msg::Console,
            Msg::LoginRefused,
            Msg::CsrfFailed,
            Msg::Scores,
        ] {
            assert!(!m.text(Lang::Ja).is_empty() && !m.text(Lang::En).is_empty());
            assert_ne!(m.text(Lang::Ja), m.text(Lang::En));
        }
        assert_eq!(status_label("verified", Lang::En), "verified");
        assert_eq!(status_label("verified", Lang::Ja), "確認済み");
    }

    #[test]
    fn the_cookie_wins_then_accept_language_then_japanese() {
        use axum::http::{header, HeaderMap, HeaderValue};
        let mut h = HeaderMap::new();
        assert_eq!(Lang::of(&h), Lang::Ja);
        h.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_static("en-US,en;q=0.9"),
        );
        assert_eq!(Lang::of(&h), Lang::En);
        h.insert(header::COOKIE, HeaderValue::from_static("jf_lang=ja"));
        assert_eq!(Lang::of(&h), Lang::Ja);
    }
}
