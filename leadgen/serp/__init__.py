"""SERP stage: parse Yandex XML, normalise domains, ingest results and companies, dedupe."""
