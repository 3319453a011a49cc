-- Runs once, when the PostgreSQL volume is created: the warehouse gets its own database and user,
-- next to Airflow's metadata database (POSTGRES_DB=airflow).
CREATE USER messaging WITH PASSWORD 'messaging';
CREATE DATABASE messaging OWNER messaging;
