#!/usr/bin/env python3
"""Behavioural equivalent of OpenG2P/Odoo's wait_for_psql.py, for the
wait-for-pg benchmark: try psycopg2.connect, sleep 1 s, until the timeout.

Like the original it connects to dbname (the original hard-codes 'postgres'),
and a timeout <= 0 exits 0 without trying. Written for this benchmark, not
copied. The password comes from PGPASSWORD (libpq reads it).
"""
import argparse
import sys
import time

import psycopg2

p = argparse.ArgumentParser()
p.add_argument("--db_host", required=True)
p.add_argument("--db_port", required=True)
p.add_argument("--db_user", required=True)
p.add_argument("--db_name", default="postgres")
p.add_argument("--timeout", type=int, default=5)
args = p.parse_args()

start = time.time()
error = ""
while (time.time() - start) < args.timeout:
    try:
        conn = psycopg2.connect(host=args.db_host, port=args.db_port, user=args.db_user, dbname=args.db_name)
        conn.close()
        error = ""
        break
    except psycopg2.OperationalError as e:
        error = e
    time.sleep(1)

if error:
    print("Database connection failure: %s" % error, file=sys.stderr)
    sys.exit(1)
