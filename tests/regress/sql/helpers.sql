-- Helpers for the other test files, which run after this one in the same database.
SET client_min_messages = warning;

-- Runs `sql` and returns 'ok', or its error as 'SQLSTATE: message'.
CREATE FUNCTION public.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
