"""api_client/http"""
