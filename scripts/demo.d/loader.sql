-- One pgbench transaction: a batch of :batch packages at a random place of the universe.
\set base random(1, :universe)
SELECT demo_load(:base, :batch);
