//! The double-entry credit ledger.
//!
//! Every movement of credits is a transfer of two entries that sum to zero, written inside the
//! caller's transaction, so credits move exactly when the state change that earns or spends
//! them commits. Invariants:
//! - the entries of the whole ledger sum to zero (each transfer does);
//! - no account but the issuer goes below zero (checked before each debit, under the write lock);
//! - a transfer's `dedup_key` is unique: one grant per user, one escrow and one refund per job,
//!   one payment per assignment, so retried or duplicated reports never pay twice;
//! - every payment names the unit and the assignment whose validated result earned it.

use commons_db::sql;
use commons_protocol::{CreditEntry, LedgerAccount, LedgerDump, LedgerTransfer};

use crate::writer::params;

use crate::error::{ComputeError, Result};
use crate::writer::{Conn, Sql};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransferKind {
    Grant,
    Escrow,
    Payment,
    Refund,
}

impl TransferKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Grant => "grant",
            Self::Escrow => "escrow",
            Self::Payment => "payment",
            Self::Refund => "refund",
        }
    }
}

/// What a transfer is for; `dedup_key` makes it happen at most once.
pub(crate) struct Memo<'a> {
    pub kind: TransferKind,
    pub dedup_key: String,
    pub job_id: Option<i64>,
    pub unit_id: Option<i64>,
    pub assignment_id: Option<i64>,
    pub memo: &'a str,
}

fn account(db: &Conn, kind: &str, user_id: Option<i64>, job_id: Option<i64>) -> Result<(i64, bool)> {
    let existing = match kind {
        "issuer" => db.maybe("SELECT id FROM ledger_accounts WHERE kind = 'issuer'", (), |r| r.get(0))?,
        "user" => db.maybe("SELECT id FROM ledger_accounts WHERE kind = 'user' AND user_id = ?1", [user_id], |r| r.get(0))?,
        _ => db.maybe("SELECT id FROM ledger_accounts WHERE kind = 'escrow' AND job_id = ?1", [job_id], |r| r.get(0))?,
    };
    if let Some(id) = existing {
        return Ok((id, false));
    }
    let id = db.one(
        "INSERT INTO ledger_accounts (kind, user_id, job_id) VALUES (?1, ?2, ?3) RETURNING id",
        params![kind, user_id, job_id],
        |r| r.get(0),
    )?;
    Ok((id, true))
}

/// The account of `user_id`, opened with the starter grant on first use.
pub(crate) fn user_account(db: &Conn, user_id: i64, starter_grant: i64) -> Result<i64> {
    let (id, created) = account(db, "user", Some(user_id), None)?;
    if created && starter_grant > 0 {
        let (issuer, _) = account(db, "issuer", None, None)?;
        let memo = Memo {
            kind: TransferKind::Grant,
            dedup_key: format!("grant:{user_id}"),
            job_id: None,
            unit_id: None,
            assignment_id: None,
            memo: "starter grant",
        };
        transfer(db, issuer, id, starter_grant, memo)?;
    }
    Ok(id)
}

pub(crate) fn escrow_account(db: &Conn, job_id: i64) -> Result<i64> {
    Ok(account(db, "escrow", None, Some(job_id))?.0)
}

pub(crate) fn balance(db: &Conn, account_id: i64) -> Result<i64> {
    // Locked: a balance is read here to be spent, and reports of several servers pay at once
    // (see `writer`); the second payment from one escrow waits and reads what the first left.
    db.one("SELECT balance FROM ledger_accounts WHERE id = ?1 /*pg: FOR UPDATE*/", [account_id], |r| r.get(0))
}

/// Moves `amount` from `from` to `to`. Returns `false` (and moves nothing) when a transfer with
/// the same dedup key already exists or the amount is zero. A debit that would take a
/// non-issuer account below zero is refused.
pub(crate) fn transfer(db: &Conn, from: i64, to: i64, amount: i64, memo: Memo<'_>) -> Result<bool> {
    if amount <= 0 {
        return Ok(false);
    }
    let from_kind: String = db.one("SELECT kind FROM ledger_accounts WHERE id = ?1", [from], |r| r.get(0))?;
    if from_kind != "issuer" {
        let available = balance(db, from)?;
        if available < amount {
            return Err(ComputeError::InsufficientCredits { needed: amount, balance: available });
        }
    }
    let inserted: Option<i64> = db.maybe(
        "INSERT INTO ledger_transfers (kind, job_id, unit_id, assignment_id, dedup_key, memo, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
        params![memo.kind.as_str(), memo.job_id, memo.unit_id, memo.assignment_id, memo.dedup_key, memo.memo, commons_db::now_unix()],
        |r| r.get(0),
    )?;
    let Some(transfer_id) = inserted else { return Ok(false) };
    for (account_id, signed) in [(from, -amount), (to, amount)] {
        db.exec("INSERT INTO ledger_entries (transfer_id, account_id, amount) VALUES (?1, ?2, ?3)", [transfer_id, account_id, signed])?;
        db.exec("UPDATE ledger_accounts SET balance = balance + ?1 WHERE id = ?2", [signed, account_id])?;
    }
    Ok(true)
}

/// Mints `amount` credits to `user_id` from the issuer: an administrator's grant. `key` makes a
/// retried grant happen once.
pub(crate) fn grant(db: &Conn, user_id: i64, amount: i64, memo: &str, key: &str, starter_grant: i64) -> Result<bool> {
    if amount <= 0 {
        return Err(ComputeError::bad_request(format!("a grant is a positive number of credits, not {amount}")));
    }
    let to = user_account(db, user_id, starter_grant)?;
    let (issuer, _) = account(db, "issuer", None, None)?;
    let memo =
        Memo { kind: TransferKind::Grant, dedup_key: format!("admin-grant:{key}"), job_id: None, unit_id: None, assignment_id: None, memo };
    transfer(db, issuer, to, amount, memo)
}

/// Returns what is left in a job's escrow to its submitter (once).
pub(crate) fn refund(db: &Conn, job_id: i64, owner_id: i64, starter_grant: i64) -> Result<i64> {
    let escrow = escrow_account(db, job_id)?;
    let left = balance(db, escrow)?;
    let owner = user_account(db, owner_id, starter_grant)?;
    let memo = Memo {
        kind: TransferKind::Refund,
        dedup_key: format!("refund:{job_id}"),
        job_id: Some(job_id),
        unit_id: None,
        assignment_id: None,
        memo: "unused escrow returned",
    };
    Ok(if transfer(db, escrow, owner, left, memo)? { left } else { 0 })
}

/// Sum of a job's transfers of one kind.
pub(crate) async fn job_total(pool: &sql::Pool, job_id: i64, kind: TransferKind) -> Result<i64> {
    let row = sql::query(
        "SELECT CAST(COALESCE(SUM(e.amount), 0) AS BIGINT) AS total FROM ledger_transfers t JOIN ledger_entries e ON e.transfer_id = t.id
         WHERE t.job_id = $1 AND t.kind = $2 AND e.amount > 0",
    )
    .bind(job_id)
    .bind(kind.as_str())
    .fetch_one(pool)
    .await?;
    Ok(row.try_get("total")?)
}

/// A user's balance and every entry of their account, newest first.
pub(crate) fn history(db: &Conn, user_id: i64, starter_grant: i64) -> Result<(i64, Vec<CreditEntry>)> {
    let account_id = user_account(db, user_id, starter_grant)?;
    let entries = db.all(
        "SELECT t.id, t.kind, e.amount, t.job_id, t.unit_id, t.assignment_id, t.memo, t.created_at
         FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id
         WHERE e.account_id = ?1 ORDER BY t.id DESC",
        [account_id],
        |row| {
            Ok(CreditEntry {
                transfer_id: row.get("id")?,
                kind: row.get("kind")?,
                amount: row.get("amount")?,
                job_id: row.get("job_id")?,
                unit_id: row.get("unit_id")?,
                assignment_id: row.get("assignment_id")?,
                memo: row.get("memo")?,
                created_at: row.get("created_at")?,
            })
        },
    )?;
    Ok((balance(db, account_id)?, entries))
}

/// The whole ledger, for audit: each account's kept balance, and every transfer's entries to
/// check it against.
pub(crate) async fn dump(pool: &sql::Pool) -> Result<LedgerDump> {
    let accounts = sql::query(
        "SELECT a.id, a.kind, u.name AS user_name, a.job_id, a.balance
         FROM ledger_accounts a LEFT JOIN users u ON u.id = a.user_id ORDER BY a.id",
    )
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| {
        Ok(LedgerAccount {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            user: row.try_get("user_name")?,
            job_id: row.try_get("job_id")?,
            balance: row.try_get("balance")?,
        })
    })
    .collect::<Result<Vec<_>>>()?;
    let mut transfers: Vec<LedgerTransfer> =
        sql::query("SELECT id, kind, job_id, unit_id, assignment_id, memo FROM ledger_transfers ORDER BY id")
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                Ok(LedgerTransfer {
                    id: row.try_get("id")?,
                    kind: row.try_get("kind")?,
                    job_id: row.try_get("job_id")?,
                    unit_id: row.try_get("unit_id")?,
                    assignment_id: row.try_get("assignment_id")?,
                    memo: row.try_get("memo")?,
                    entries: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
    let index: std::collections::HashMap<i64, usize> = transfers.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
    for row in sql::query("SELECT transfer_id, account_id, amount FROM ledger_entries ORDER BY id").fetch_all(pool).await? {
        let transfer_id: i64 = row.try_get("transfer_id")?;
        let slot = index.get(&transfer_id).ok_or_else(|| ComputeError::Corrupt(format!("entry of unknown transfer {transfer_id}")))?;
        transfers[*slot].entries.push((row.try_get("account_id")?, row.try_get("amount")?));
    }
    Ok(LedgerDump { accounts, transfers })
}
