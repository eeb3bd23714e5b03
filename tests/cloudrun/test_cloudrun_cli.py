"""``baton deploy --provider gcp --project P --region R --public-ingress``, ``deploy-status`` and ``teardown`` on
the stand-in, through the flows and a real Prefect server."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from baton_cli import ok, run_baton

pytestmark = pytest.mark.cloudrun


def test_cli_deploys_the_shop_with_a_public_ingress_and_tears_it_down(shop, cloud_env, adapter_image, users_images,
                                                                     prefect_api):
    root = shop()
    env = {"BATON_ADAPTER_IMAGE": adapter_image}
    started = time.monotonic()
    deployed = ok(run_baton("deploy", "--provider", "gcp", "--project", "baton-test", "--region", "europe-west1",
                            "--public-ingress", "--json", cwd=root, timeout=300, env=env)).json()
    print(f"cli deploy: {time.monotonic() - started:.1f} s (provider {deployed['cloud']['seconds']} s)")
    try:
        assert deployed["provider"] == "cloudrun"
        nodes = deployed["cloud"]["nodes"]
        assert [n for n, e in nodes.items() if e["public"]] == ["gateway"]
        # public: anyone reaches the ingress; the rest stay private
        with urllib.request.urlopen(f"{nodes['gateway']['url']}/", timeout=10) as resp:
            assert resp.status == 200 and b"links" in resp.read()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{nodes['orders']['url']}/orders", timeout=10)
        assert refused.value.code == 403

        status = ok(run_baton("deploy-status", "--json", cwd=root, env=env)).json()
        assert status["provider"] == "cloudrun" and status["running"]
        assert {n: s["state"] for n, s in status["nodes"].items()} == {n: "succeeded" for n in nodes}
        human = ok(run_baton("deploy-status", cwd=root, env=env)).stdout
        assert "succeeded" in human and "gateway" in human
        moved = run_baton("deploy", "--provider", "docker", cwd=root, timeout=120, env=env)
        assert moved.code != 0 and "runs on the cloudrun provider" in moved.stderr

        # a canary is a revision with a share of the traffic; the same image again sets its share; swap promotes
        canary = ok(run_baton("route", "canary", "users", users_images[1], "--pct", "20", "--json", cwd=root,
                              timeout=300, env=env)).json()
        again = ok(run_baton("route", "canary", "users", users_images[1], "--pct", "50", "--json", cwd=root,
                             timeout=300, env=env)).json()
        assert again["revision"] == canary["revision"]
        users = ok(run_baton("deploy-status", "--json", cwd=root, env=env)).json()["nodes"]["users"]
        assert sorted(p for _, p in users["traffic"]) == [50, 50]
        analysed = run_baton("route", "canary", "users", users_images[1], "--promote", cwd=root, timeout=300,
                             env=env)
        assert analysed.code != 0 and "Cloud Run does not expose" in analysed.stderr
        started = time.monotonic()
        swapped = ok(run_baton("swap", "users", users_images[1], cwd=root, timeout=300, env=env)).stdout
        assert canary["revision"] in swapped
        print(f"cli swap (promotion): {time.monotonic() - started:.1f} s")
        users = ok(run_baton("deploy-status", "--json", cwd=root, env=env)).json()["nodes"]["users"]
        assert users["traffic"] == [[canary["revision"], 100]]
        token = {"Authorization": "Bearer serviceAccount:baton-shop@baton-test.iam.gserviceaccount.com"}
        with urllib.request.urlopen(urllib.request.Request(f"{nodes['users']['url']}/users/42", headers=token),
                                    timeout=10) as resp:
            assert b"Ada Lovelace" in resp.read()  # the real service now, where the mock answered before
    finally:
        started = time.monotonic()
        torn = run_baton("teardown", "--json", cwd=root, timeout=300, env=env)
        print(f"cli teardown: {time.monotonic() - started:.1f} s")
    assert sorted(ok(torn).json()["services_stopped"]) == sorted(e["service"] for e in nodes.values())
    after = ok(run_baton("deploy", "--provider", "cloudrun", "--project", "baton-test", "--region", "x",
                         "--json", cwd=root, timeout=300, env=env))
    assert after.json()["cloud"]["region"] == "x"  # the record went with the teardown: a new region is honoured
    ok(run_baton("teardown", cwd=root, timeout=300, env=env))
    run_baton("down", "--all", cwd=root, timeout=120)  # the conductor the deploy started
