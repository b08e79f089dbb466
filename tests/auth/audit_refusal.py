"""A database that refuses AuditEvent rows, for the tests that a write or a message whose audit
cannot be stored is not stored either."""

from __future__ import annotations

from sqlalchemy import Engine


def refuse_audit_rows(engine: Engine) -> None:
    """A trigger that makes the database refuse every AuditEvent row (as a full disk or a
    broken audit table would)."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON resources "
                "WHEN NEW.res_type = 'AuditEvent' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.res_type = 'AuditEvent' THEN RAISE EXCEPTION 'refused'; END IF; "
                "RETURN NEW; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON resources "
                "FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
            )


def drop_refusal(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER refuse_audit")
        else:
            conn.exec_driver_sql("DROP TRIGGER refuse_audit ON resources")
            conn.exec_driver_sql("DROP FUNCTION refuse_audit()")
