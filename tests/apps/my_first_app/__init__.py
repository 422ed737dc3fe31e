"""The seeds' example app: example_db, spatial_db, temp_db and two connection settings."""
