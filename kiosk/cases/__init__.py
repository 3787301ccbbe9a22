"""Cases: what the kiosk saved, and their way to the cloud and back.

store (SQLite WAL outbox + image files) → sync (firebase: Firestore + Storage, in the layout of
cloud_schema; sync_status says how it went) → cloud results, reviews and messages back into the
store. model_updates installs model releases the cloud publishes, after releases checks their
signatures.
"""
