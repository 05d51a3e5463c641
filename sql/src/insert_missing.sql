-- insert_missing and its two forms: insert the rows of a batch that a table lacks and return
-- the id of every input row, safely while other sessions insert the same rows. The application
-- API: EXECUTE is PUBLIC's. README.md, "SQL reference", documents every rule and error.
--
-- No SET search_path here, on purpose: the three deparse and plan their SQL with search_path
-- pinned (the plan keeps that path) but run it under the caller's, so that the target's own
-- triggers and defaults behave as after an INSERT by the caller.

-- Inserts the rows of a batch that `target` lacks and returns the id of every input row.
-- The batch is columnar: one array per entry of `columns`, all of the same length.
CREATE FUNCTION insert_missing(target regclass, columns text[], VARIADIC "values" "any")
RETURNS TABLE (ord bigint, id bigint, inserted boolean)
AS 'MODULE_PATHNAME', 'idsync_insert_missing'
LANGUAGE C VOLATILE ROWS 1000;
COMMENT ON FUNCTION insert_missing(regclass, text[], "any") IS
'insert the missing rows of a columnar batch and return (ord, id, inserted) for every input row, in input order';

-- Many small sets at once (the licences of each package, say): set_keys[i] names the set that
-- input row i belongs to. Returns one row per set key, ascending, with the sorted distinct ids
-- of its members.
CREATE FUNCTION insert_missing_sets(target regclass, columns text[], set_keys bigint[],
                                    VARIADIC "values" "any")
RETURNS TABLE (set_key bigint, ids bigint[])
AS 'MODULE_PATHNAME', 'idsync_insert_missing_sets'
LANGUAGE C VOLATILE ROWS 1000;
COMMENT ON FUNCTION insert_missing_sets(regclass, text[], bigint[], "any") IS
'insert the missing members of many sets and return, per set key, the sorted array of member ids';

-- Batches too big to pass as arrays: the rows come from a staging table (typically a
-- temporary table filled by COPY) with an integer column "ord" that identifies each row, and
-- the given columns with the target columns' types. `columns` defaults to every staging column
-- but ord. Returns (ord, id, inserted) per staging row, in no particular order.
CREATE FUNCTION insert_missing_staged(target regclass, staging regclass, columns text[] DEFAULT NULL)
RETURNS TABLE (ord bigint, id bigint, inserted boolean)
AS 'MODULE_PATHNAME', 'idsync_insert_missing_staged'
LANGUAGE C VOLATILE ROWS 1000;
COMMENT ON FUNCTION insert_missing_staged(regclass, regclass, text[]) IS
'insert the missing rows of a staging table and return (ord, id, inserted) for every staging row';
