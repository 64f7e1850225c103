"""api_client/api"""
