from sqlalchemy import text


def test_sync_then_app_api_reads_initial_data(my_first_app, platform):
    from storekeeper import stores

    results = stores.sync_stores(platform, ["my_first_app"])
    assert [r.ok for r in results] == [True, True, True]
    engine = my_first_app.get_persistent_store_database("example_db")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM stream_gages")).scalar() == 2
