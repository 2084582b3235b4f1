"""The data catalogue of published de-identified datasets (데이터 카탈로그), also as DCAT."""
