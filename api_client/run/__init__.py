"""api_client/run"""
