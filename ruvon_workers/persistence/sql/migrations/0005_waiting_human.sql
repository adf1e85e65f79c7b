-- 0005: a workflow waiting for a person is WAITING_HUMAN, the status Ruvon sets; rows
-- written by earlier versions under WAITING_HUMAN_INPUT are renamed.
UPDATE workflow_executions SET status = 'WAITING_HUMAN' WHERE status = 'WAITING_HUMAN_INPUT';
