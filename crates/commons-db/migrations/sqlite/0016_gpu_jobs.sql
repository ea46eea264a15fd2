-- A job whose units only a worker offering a GPU may take (`commons job submit --gpu`).
ALTER TABLE jobs ADD COLUMN needs_gpu BOOLEAN NOT NULL DEFAULT FALSE;
